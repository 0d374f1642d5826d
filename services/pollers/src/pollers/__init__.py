"""EAS Station pollers: NWS API, IPAWS-OPEN and CAP folder/URL feeds published to the bus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pollers")
except PackageNotFoundError:  # running from a source tree without metadata
    __version__ = "0.0.0"
