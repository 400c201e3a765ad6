"""Specs run against a booted image (imagefactory.verify passes --hosts); never collected alone."""
