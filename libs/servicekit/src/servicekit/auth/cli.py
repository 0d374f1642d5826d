"""`eas-token`: make the station's signing keys and mint tokens until a login service exists."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import (
    TokenSigner,
    generate_keypair,
    write_keypair,
    write_private_key,
)


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
    mint.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
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
    if args.ttl <= 0:
        print("--ttl must be positive", file=sys.stderr)
        return 2
    signer = TokenSigner(args.key.read_text())
    print(signer.mint(args.sub, Role(args.role), ttl_s=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
