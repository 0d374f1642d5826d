"""Feeds: each polls one source and returns a PollResult."""
