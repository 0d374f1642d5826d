"""EAS Station station-api: settings, users and roles, audit log, fleet health."""

__version__ = "0.1.0"
