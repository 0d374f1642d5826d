"""Loading the station's public key from a service's settings."""

from __future__ import annotations

from servicekit.auth.tokens import TokenVerifier
from servicekit.settings import ServiceSettings


def load_verifier(settings: ServiceSettings) -> TokenVerifier | None:
    """The verifier for the configured key (PEM text wins over a file), or None if none is set."""
    if settings.auth_public_key:
        return TokenVerifier(settings.auth_public_key)
    if settings.auth_public_key_file and settings.auth_public_key_file.exists():
        return TokenVerifier(settings.auth_public_key_file.read_text())
    return None
