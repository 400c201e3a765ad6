"""App-Core: the boot-time role controller baked into every golden VM image.

Standard library only and Python 3.6 compatible: it runs on OL8's platform-python.
"""

VERSION = "0.1.0"
