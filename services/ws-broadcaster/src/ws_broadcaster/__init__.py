"""EAS Station ws-broadcaster."""

__version__ = "0.1.0"
