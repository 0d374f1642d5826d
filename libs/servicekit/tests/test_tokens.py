from __future__ import annotations

import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.auth.permissions import ROLE_PERMISSIONS, Role
from servicekit.auth.tokens import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    LEEWAY_S,
    Principal,
    TokenError,
    TokenSigner,
    TokenVerifier,
    csrf_hash,
    generate_keypair,
    load_or_create_private_key,
    write_keypair,
    write_private_key,
)


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# A fixed past instant whose expiry (+60 s) has all five low bits set, so an expiry check
# that combined the numbers any other way than "exp + 30" would land on another second.
ISSUED = 1_700_000_003
assert (ISSUED + 60) % 32 == 31


def test_cached_token_still_expires_and_tampering_is_caught():
    private, public = generate_keypair()
    clock = Clock(ISSUED)
    signer, verifier = TokenSigner(private), TokenVerifier(public, clock=clock)
    token = signer.mint("alice", Role.OPERATOR, ttl_s=60, now=ISSUED)
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).role is Role.OPERATOR  # from the cache
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        verifier.verify(tampered)
    # The policy: a token is honoured up to 30 s after its expiry (clock skew), not longer.
    assert LEEWAY_S == 30
    clock.now = ISSUED + 60 + 30  # the last second of its leeway: still good
    assert verifier.verify(token).subject == "alice"
    assert TokenVerifier(public, clock=clock).verify(token).subject == "alice"  # fresh too
    clock.now += 1
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)  # cached, yet refused
    with pytest.raises(TokenError, match="expired"):
        TokenVerifier(public, clock=clock).verify(token)  # and refused when verified afresh


def test_the_cache_keeps_the_most_recently_used_tokens_only():
    class Small(TokenVerifier):
        CACHE_SIZE = 2

    private, public = generate_keypair()
    signer, verifier = TokenSigner(private), Small(public)
    a, b, c = (signer.mint(name, Role.VIEWER) for name in ("a", "b", "c"))
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recent
    verifier.verify(c)  # over the bound: b, the least recently used, goes
    assert list(verifier._verified) == [a, c]


def test_write_keypair_files(tmp_path: Path):
    private_path, public_path = write_keypair(tmp_path / "keys")
    assert (private_path.name, public_path.name) == ("signing.pem", "signing.pub.pem")
    assert private_path.parent == public_path.parent == tmp_path / "keys"
    assert private_path.stat().st_mode & 0o777 == 0o600  # the signing key is the station's
    token = TokenSigner(private_path.read_text()).mint("k", Role.ADMIN)
    assert TokenVerifier(public_path.read_text()).verify(token).role is Role.ADMIN


def test_an_expired_token_is_refused_even_before_it_is_cached():
    private, public = generate_keypair()
    signer, verifier = TokenSigner(private), TokenVerifier(public)
    token = signer.mint("bob", Role.VIEWER, ttl_s=60, now=time.time() - 60 - LEEWAY_S - 5)
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_a_token_without_a_numeric_expiry_is_refused():
    private, public = generate_keypair()
    key = serialization.load_pem_private_key(private.encode(), password=None)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "role": "admin", "iat": now}
    verifier = TokenVerifier(public)
    with pytest.raises(TokenError, match="exp"):
        verifier.verify(jwt.encode(claims, key, algorithm=ALGORITHM))  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="exp"):
        verifier.verify(
            jwt.encode({**claims, "exp": "later"}, key, algorithm=ALGORITHM)  # type: ignore[arg-type]
        )


def test_token_from_another_key_is_refused():
    signer = TokenSigner(generate_keypair()[0])
    verifier = TokenVerifier(generate_keypair()[1])
    with pytest.raises(TokenError):
        verifier.verify(signer.mint("mallory", Role.ADMIN))


def test_minted_claims():
    private, public = generate_keypair()
    signer = TokenSigner(private)
    now = 1_700_000_004  # "+" and "|" give different expiries from here
    token = signer.mint("carol", Role.ADMIN, ttl_s=60, now=now, csrf_token="c-1")
    claims = jwt.decode(token, options={"verify_signature": False})
    jti = claims.pop("jti")
    assert len(jti) == 32 and int(jti, 16) >= 0
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "carol",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        # The mint time in milliseconds: a revocation "before this instant" spares the token
        # issued in the same second right after it (a password change's new session).
        "ims": now * 1000,
        "csrf": csrf_hash("c-1"),
    }
    principal = TokenVerifier(public, clock=Clock(now)).verify(token)
    assert (principal.expires_at, principal.csrf_hash) == (now + 60.0, csrf_hash("c-1"))
    assert principal.token_id == jti
    # Access tokens live 15 minutes unless asked otherwise.
    default = jwt.decode(
        signer.mint("d", Role.VIEWER, now=now), options={"verify_signature": False}
    )
    assert default["exp"] - default["iat"] == 900


def test_principals_are_frozen_and_know_anonymity():
    private, public = generate_keypair()
    principal = TokenVerifier(public).verify(TokenSigner(private).mint("e", Role.VIEWER))
    assert principal.anonymous is False
    anonymous = Principal.anonymous_reader()
    assert anonymous.anonymous is True and anonymous.role is None
    with pytest.raises(FrozenInstanceError):
        principal.role = Role.ADMIN  # type: ignore[misc]


def test_a_token_with_an_unknown_role_is_refused():
    private, public = generate_keypair()
    key = serialization.load_pem_private_key(private.encode(), password=None)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "f", "role": "root", "iat": now}
    token = jwt.encode({**claims, "exp": now + 60}, key, algorithm=ALGORITHM)  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="unknown role 'root'"):
        TokenVerifier(public).verify(token)


def test_write_keypair_makes_its_folders_and_may_run_again(tmp_path: Path):
    first, _ = write_keypair(tmp_path / "a" / "b")
    again, _ = write_keypair(tmp_path / "a" / "b")  # a new pair in the same place
    assert first == again and first.exists()


def test_keygen_writes_the_chain_key_once_and_never_replaces_it(tmp_path, capsys):
    import stat

    from servicekit.auth.cli import main

    assert main(["keygen", "--dir", str(tmp_path)]) == 0
    chain = tmp_path / "chain.pem"
    first = chain.read_bytes()
    assert stat.S_IMODE(chain.stat().st_mode) == 0o600
    signing = (tmp_path / "signing.pem").read_bytes()
    assert main(["keygen", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "signing.pem").read_bytes() != signing  # --force replaces that one
    assert chain.read_bytes() == first  # but never the key earlier log entries are signed by
    assert "chain.pem" in capsys.readouterr().out


def test_write_private_key_never_replaces_a_key(tmp_path: Path):
    path = tmp_path / "deep" / "chain.pem"  # its folders are made
    first, second = generate_keypair()[0], generate_keypair()[0]
    assert write_private_key(path, first) is True
    assert path.stat().st_mode & 0o777 == 0o600
    assert write_private_key(path, second) is False  # a key is there: kept as it was
    assert path.read_text() == first
    assert [p.name for p in path.parent.iterdir()] == ["chain.pem"]  # no temporary left over


def test_load_or_create_private_key(tmp_path: Path):
    path = tmp_path / "keys" / "chain.pem"
    made = load_or_create_private_key(path)
    assert path.exists()
    again = load_or_create_private_key(path)  # read back, not made anew
    raw = serialization.Encoding.Raw
    fmt = serialization.PublicFormat.Raw
    assert made.public_key().public_bytes(raw, fmt) == again.public_key().public_bytes(raw, fmt)
    rsa_path = tmp_path / "rsa.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="does not hold an Ed25519 private key"):
        load_or_create_private_key(rsa_path)
    public_only = tmp_path / "public.pem"
    public_only.write_text(generate_keypair()[1])
    with pytest.raises(ValueError):  # a public key is no private key: load_pem refuses it
        load_or_create_private_key(public_only)


def test_mint_is_capped_and_audited_before_the_token_is_shown(
    tmp_path, capsys, monkeypatch, redis_url, bus_namespace
):
    import redis as sync_redis_lib

    from eas_schemas.envelope import decode_entry
    from eas_schemas.system_events import AUDIT_RECORDS
    from servicekit.auth.cli import main
    from servicekit.auth.tokens import MAX_TTL_S
    from servicekit.bus import stream_key

    assert main(["keygen", "--dir", str(tmp_path)]) == 0
    key = str(tmp_path / "signing.pem")
    monkeypatch.setenv("EAS_REDIS_URL", redis_url)
    monkeypatch.setenv("EAS_BUS_NAMESPACE", bus_namespace)
    capsys.readouterr()
    assert main(["mint", "--role", "admin", "--key", key, "--ttl", str(MAX_TTL_S + 1)]) == 2
    assert capsys.readouterr().out == ""
    assert main(["mint", "--role", "operator", "--sub", "robot", "--key", key]) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier((tmp_path / "signing.pub.pem").read_text())
    principal = verifier.verify(token)
    client = sync_redis_lib.Redis.from_url(redis_url, decode_responses=True)
    entries = client.xrange(stream_key(AUDIT_RECORDS, bus_namespace))
    records = [decode_entry(fields).data for _, fields in entries]
    assert [r["action"] for r in records] == ["token.mint"]
    assert records[0]["target"] == f"token/{principal.token_id}"
    assert records[0]["detail"] == {"subject": "robot", "role": "operator", "ttl_s": 3600}
    # No audit, no token.
    monkeypatch.setenv("EAS_REDIS_URL", "redis://127.0.0.1:9/0")
    assert main(["mint", "--role", "admin", "--key", key]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "audit log" in out.err


def test_a_revoked_token_is_refused_even_from_the_cache():
    from servicekit.auth.revocation import RevocationList, revocation_envelope

    private, public = generate_keypair()
    signer = TokenSigner(private)
    revocations = RevocationList()
    verifier = TokenVerifier(public, revocations)
    # Minted a second ago: a cut made now covers them whatever the clock's resolution.
    old = signer.mint("alice", Role.ADMIN, now=time.time() - 1)
    other = signer.mint("alice", Role.ADMIN, now=time.time() - 1)
    assert verifier.verify(old).subject == "alice"  # now cached
    one = verifier.verify(old).token_id
    assert one is not None
    revocations.apply(revocation_envelope("alice", "logout", valid_for_s=60, token_id=one).data)
    with pytest.raises(TokenError, match="revoked"):
        verifier.verify(old)
    assert verifier.verify(other).subject == "alice"
    revocations.apply(revocation_envelope("alice", "user-update", valid_for_s=60).data)
    with pytest.raises(TokenError, match="revoked"):
        verifier.verify(other)
    # A token minted after the cut (the next login) is good.
    assert verifier.verify(signer.mint("alice", Role.VIEWER)).role == Role.VIEWER


def test_signing_keys_are_created_0600_in_a_0700_folder(tmp_path, monkeypatch):
    import os
    import stat
    from pathlib import Path

    from servicekit.auth.tokens import write_keypair

    # With no umask and no chmod afterwards, only the mode a file is created with protects it.
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    old = os.umask(0)
    try:
        priv, _pub = write_keypair(tmp_path / "keys")
        again, _ = write_keypair(tmp_path / "keys")  # --force: replaced, still 0600
    finally:
        os.umask(old)
    assert again == priv
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")] == []


def test_lifetimes_from_one_second_to_a_day_and_no_other():
    from servicekit.auth.tokens import MAX_TTL_S

    # The policy: revocations are kept (and read back at start) for this long.
    assert MAX_TTL_S == 86_400
    private, public = generate_keypair()
    signer, verifier = TokenSigner(private), TokenVerifier(public, clock=Clock(ISSUED))
    for ttl in (1, MAX_TTL_S):
        assert verifier.verify(signer.mint("g", Role.VIEWER, ttl_s=ttl, now=ISSUED)).expires_at == (
            ISSUED + ttl
        )
    for ttl in (0, -1, MAX_TTL_S + 1):
        with pytest.raises(ValueError, match="ttl_s"):
            signer.mint("g", Role.VIEWER, ttl_s=ttl, now=ISSUED)


def test_principal_fields_from_the_claims():
    private, public = generate_keypair()
    key = serialization.load_pem_private_key(private.encode(), password=None)
    signer, verifier = TokenSigner(private), TokenVerifier(public, clock=Clock(ISSUED))
    minted = verifier.verify(signer.mint("h", Role.OPERATOR, now=ISSUED + 0.25, token_id="t-1"))
    # A given id is kept; the mint instant to the millisecond; no CSRF binding unless asked.
    assert (minted.token_id, minted.issued_at, minted.csrf_hash) == ("t-1", ISSUED + 0.25, None)
    assert minted.permissions == ROLE_PERMISSIONS[Role.OPERATOR]
    # A token from before "ims" existed is cut by its whole-second iat.
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "i", "role": "viewer", "iat": ISSUED}
    old = jwt.encode({**claims, "exp": ISSUED + 60}, key, algorithm=ALGORITHM)  # type: ignore[arg-type]
    principal = verifier.verify(old)
    assert (principal.issued_at, principal.token_id, principal.subject) == (ISSUED, None, "i")


def test_a_key_folder_others_can_enter_is_tightened(tmp_path: Path):
    import os
    import stat

    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    write_keypair(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Entering needs only the x bit: others-may-enter alone (0701) is tightened too.
    enter_only = tmp_path / "enter-only"
    enter_only.mkdir()
    enter_only.chmod(0o701)
    write_private_key(enter_only / "chain.pem", generate_keypair()[0])
    assert stat.S_IMODE(enter_only.stat().st_mode) == 0o700
    if os.geteuid() == 0:  # CI and the dev machines run as root: a folder of another user
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        theirs.chmod(0o755)
        os.chown(theirs, 4242, 4242)
        write_private_key(theirs / "chain.pem", generate_keypair()[0])
        assert stat.S_IMODE(theirs.stat().st_mode) == 0o755  # not ours to change


def test_a_signing_key_must_be_ed25519():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ValueError, match="Ed25519"):
        TokenSigner(pem)
