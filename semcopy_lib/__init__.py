"""semcopy: find semantic copies of an image in a gallery."""

__version__ = "0.1.0"
