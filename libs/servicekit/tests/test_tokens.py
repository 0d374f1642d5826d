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
