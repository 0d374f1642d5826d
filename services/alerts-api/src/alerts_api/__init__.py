"""EAS Station alerts-api."""

__version__ = "0.1.0"
