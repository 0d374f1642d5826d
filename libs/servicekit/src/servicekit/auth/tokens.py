"""Minting and verifying station access tokens (EdDSA / Ed25519 JWT)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from servicekit.auth.permissions import ANONYMOUS_PERMISSIONS, ROLE_PERMISSIONS, Permission, Role

if TYPE_CHECKING:
    from servicekit.auth.revocation import RevocationList

ISSUER = "eas-station"
AUDIENCE = "eas-station"
ALGORITHM = "EdDSA"
LEEWAY_S = 30
# The longest access token anyone mints (eas-token mint included): revocations are kept, and
# read back at start, for this long.
MAX_TTL_S = 86_400


class TokenError(Exception):
    """The token is missing, malformed, tampered with or expired."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role | None
    permissions: frozenset[Permission]
    token_id: str | None = None
    expires_at: float | None = None
    # SHA-256 (hex) of the CSRF token issued with this access token, when bound to one.
    csrf_hash: str | None = None
    # Epoch seconds (ms resolution) the token was minted: revocations cut by it.
    issued_at: float | None = None

    @property
    def anonymous(self) -> bool:
        return self.role is None

    @classmethod
    def anonymous_reader(cls) -> Principal:
        return cls(subject="anonymous", role=None, permissions=ANONYMOUS_PERMISSIONS)


def generate_keypair() -> tuple[str, str]:
    """A new (private PEM, public PEM) Ed25519 key pair."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def private_dir(directory: Path) -> None:
    """Make ``directory`` (0700) for keys, or tighten one we own that others can enter."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        directory.chmod(0o700)


def _write_secret(path: Path, text: str) -> Path:
    """``text`` in a new 0600 file beside ``path`` (never readable by others, even briefly)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return tmp


def write_private_key(path: Path, private_pem: str) -> bool:
    """Write ``private_pem`` to ``path`` (mode 0600) unless a file is already there.

    Written to a temporary file and linked into place, which fails if ``path`` exists: two
    processes starting at once both end up with the first one's key, and neither ever reads
    a half-written file. False when a key was already there."""
    private_dir(path.parent)
    tmp = _write_secret(path, private_pem)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``, generated there (0600) on first use."""
    if not path.exists():
        write_private_key(path, generate_keypair()[0])
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def write_keypair(directory: Path) -> tuple[Path, Path]:
    private, public = generate_keypair()
    priv_path, pub_path = directory / "signing.pem", directory / "signing.pub.pem"
    private_dir(directory)
    # Created 0600 and renamed into place (replacing an old key atomically): a key written
    # with the default mode and chmod-ed afterwards is readable by others in between.
    os.replace(_write_secret(priv_path, private), priv_path)
    pub_path.write_text(public)
    return priv_path, pub_path


class TokenSigner:
    def __init__(self, private_pem: str) -> None:
        self._key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(self._key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key")

    def public_pem(self) -> str:
        """The matching public key, for a verifier in the same process."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def mint(
        self,
        subject: str,
        role: Role,
        ttl_s: int = 900,
        now: float | None = None,
        csrf_token: str | None = None,
        token_id: str | None = None,
    ) -> str:
        """A signed access token; ``csrf_token`` binds the token to that double-submit value
        (only its hash is carried), so a cookie planted by a sibling origin cannot pass."""
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be 1-{MAX_TTL_S} seconds")
        at = time.time() if now is None else now
        issued = int(at)
        claims: dict[str, str | int] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "role": role.value,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_s,
            "jti": token_id or uuid.uuid4().hex,
            # iat is whole seconds; a revocation and the next login can share one.
            "ims": int(at * 1000),
        }
        if csrf_token is not None:
            claims["csrf"] = csrf_hash(csrf_token)
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    """Verifies tokens locally; remembers the ones it already verified until they expire.

    An Ed25519 check costs ~0.6 ms here, more than the rest of a WebSocket handshake or a
    small request; a browser presents the same token on every call. The cache is keyed by
    the whole token text, so a token altered in any byte is verified afresh.
    """

    CACHE_SIZE = 4096

    def __init__(
        self,
        public_pem: str,
        revocations: RevocationList | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = serialization.load_pem_public_key(public_pem.encode())
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        self.revocations = revocations
        # Wall-clock seconds; expiry is judged by it on both paths (cached and fresh), so a
        # test can move time instead of sleeping through a token's lifetime.
        self._clock = clock

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at is not None and self._clock() > cached.expires_at + LEEWAY_S:
                del self._verified[token]
                raise TokenError("token expired")
            # A cached token is still checked: it may have been revoked since.
            if self.revocations is not None and self.revocations.revoked(cached):
                raise TokenError("token revoked")
            self._verified.move_to_end(token)
            return cached
        principal = self._verify(token)
        if self.revocations is not None and self.revocations.revoked(principal):
            raise TokenError("token revoked")
        self._verified[token] = principal
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                # Expiry is checked below against the verifier's clock, not PyJWT's own.
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise TokenError("invalid token: Expiration Time claim (exp) must be a number")
        if self._clock() > exp + LEEWAY_S:
            raise TokenError("token expired")
        try:
            role = Role(str(claims.get("role")))
        except ValueError as exc:
            raise TokenError(f"unknown role {claims.get('role')!r}") from exc
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            permissions=ROLE_PERMISSIONS[role],
            token_id=claims.get("jti"),
            expires_at=float(claims["exp"]),
            csrf_hash=str(claims["csrf"]) if "csrf" in claims else None,
            issued_at=float(claims["ims"]) / 1000 if "ims" in claims else float(claims["iat"]),
        )


def csrf_hash(csrf_token: str) -> str:
    return hashlib.sha256(csrf_token.encode()).hexdigest()
