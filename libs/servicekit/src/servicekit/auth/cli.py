"""`eas-token`: make the station's signing keys and mint tokens until a login service exists."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from pathlib import Path

from servicekit.auth.audit import publish_audit_sync
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import (
    MAX_TTL_S,
    TokenSigner,
    generate_keypair,
    write_keypair,
    write_private_key,
)
from servicekit.bus import SyncBus, sync_redis
from servicekit.settings import ServiceSettings


class MintRefused(Exception):
    """No token: the lifetime is out of bounds, or the mint could not be audited."""


def mint_audited(signer: TokenSigner, subject: str, role: Role, ttl_s: int, tool: str) -> str:
    """A token from the signing key itself (no login), recorded in the audit log first.

    Whoever holds the key can mint anything; what this adds is a cap on the lifetime and a
    trace: the audit record (who ran it, subject, role, lifetime, token id) is published to
    the station's bus (``EAS_REDIS_URL``, ``EAS_BUS_NAMESPACE``) before the token is shown,
    and no token is shown when that fails."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise MintRefused(f"--ttl must be 1-{MAX_TTL_S} seconds")
    settings = ServiceSettings()
    token_id = uuid.uuid4().hex
    try:
        client = sync_redis(settings.redis_url)
        try:
            publish_audit_sync(
                SyncBus(client, settings.bus_namespace),
                tool,
                "token.mint",
                f"cli:{getpass.getuser()}",
                target=f"token/{token_id}",
                detail={"subject": subject, "role": role.value, "ttl_s": ttl_s},
            )
        finally:
            client.close()
    except Exception as exc:
        raise MintRefused(
            f"cannot record the mint in the audit log ({type(exc).__name__}); "
            "no token issued: is Redis (EAS_REDIS_URL) running?"
        ) from None
    return signer.mint(subject, role, ttl_s=ttl_s, token_id=token_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eas-token", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser(
        "keygen", help="write signing.pem and signing.pub.pem (and chain.pem if absent)"
    )
    keygen.add_argument("--dir", type=Path, default=Path("var/keys"))
    keygen.add_argument("--force", action="store_true", help="replace existing keys")
    mint = sub.add_parser("mint", help="print a signed access token")
    mint.add_argument("--role", choices=[r.value for r in Role], required=True)
    mint.add_argument("--sub", default="cli", help="subject (user name) in the token")
    mint.add_argument(
        "--ttl", type=int, default=3600, help=f"lifetime in seconds (at most {MAX_TTL_S})"
    )
    mint.add_argument("--key", type=Path, default=Path("var/keys/signing.pem"))
    args = parser.parse_args(argv)

    if args.command == "keygen":
        if (args.dir / "signing.pem").exists() and not args.force:
            print(f"{args.dir}/signing.pem exists; use --force to replace it", file=sys.stderr)
            return 2
        priv, pub = write_keypair(args.dir)
        print(f"wrote {priv} and {pub}")
        # The log-signing key is never replaced, --force or not: a new one would make every
        # entry signed so far fail verification. Replicas must share this one file.
        chain = args.dir / "chain.pem"
        if write_private_key(chain, generate_keypair()[0]):
            print(f"wrote {chain} (signs the station log and the audit log)")
        return 0
    if not args.key.exists():
        print(f"signing key {args.key} not found (run `eas-token keygen`)", file=sys.stderr)
        return 2
    signer = TokenSigner(args.key.read_text())
    try:
        print(mint_audited(signer, args.sub, Role(args.role), args.ttl, "eas-token"))
    except MintRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
