"""EAS Station station-api."""

__version__ = "0.1.0"
