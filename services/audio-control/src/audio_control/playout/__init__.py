"""Playout: the worker that airs messages, its outputs and transmitter keying."""
