from __future__ import annotations

import time

import pytest

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenError, TokenSigner, TokenVerifier, generate_keypair


def test_cached_token_still_expires_and_tampering_is_caught():
    private, public = generate_keypair()
    signer, verifier = TokenSigner(private), TokenVerifier(public)
    # Issued long enough ago that it expires 1 s from now, past the leeway.
    token = signer.mint("alice", Role.OPERATOR, ttl_s=60, now=time.time() - 60 - 29)
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).role is Role.OPERATOR  # from the cache
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        verifier.verify(tampered)
    time.sleep(1.2)
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_token_from_another_key_is_refused():
    signer = TokenSigner(generate_keypair()[0])
    verifier = TokenVerifier(generate_keypair()[1])
    with pytest.raises(TokenError):
        verifier.verify(signer.mint("mallory", Role.ADMIN))


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
