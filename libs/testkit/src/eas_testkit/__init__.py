"""Test fixtures for EAS Station."""
