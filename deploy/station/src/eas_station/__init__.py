"""EAS Station one-machine runner."""
