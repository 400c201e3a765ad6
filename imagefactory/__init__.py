"""imagefactory: layered, cached, verified golden-image builds for KVM."""

__version__ = "0.1.0"
