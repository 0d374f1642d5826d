"""EAS Station audio-control: relay decisions, EAS message generation, playout."""

__version__ = "0.1.0"
