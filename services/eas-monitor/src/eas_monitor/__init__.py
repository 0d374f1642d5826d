"""EAS Station eas-monitor: monitored audio inputs, live SAME decoding, levels."""

__version__ = "0.1.0"
