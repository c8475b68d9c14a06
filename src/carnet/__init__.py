"""carnet: an open-source host for France's shared medical record (DMP)."""

__version__ = "0.1.0"
