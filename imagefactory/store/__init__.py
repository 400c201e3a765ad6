"""The image store: publish sealed images, channels, prune, and pull onto hypervisors.

Task-facing functions are in `imagefactory.store.api`; see docs/store.md.
"""
