"""Station tokens: Ed25519-signed JWTs minted by the station, verified locally by every service."""

from servicekit.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from servicekit.auth.tokens import Principal, TokenError, TokenSigner, TokenVerifier

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "TokenError",
    "TokenSigner",
    "TokenVerifier",
]
