"""Tokens: strict parsing; and the secret and token files `make run` writes."""

import os
import stat

import pytest

from deploy import run
from shared.domain.auth import InvalidToken, Scope, mint, verify
from tests.conftest import TEST_SECRET


def test_a_minted_token_verifies():
    principal = verify(TEST_SECRET, mint(TEST_SECRET, "386", [Scope.READ], 60))
    assert principal.unit == "386" and principal.scopes == {Scope.READ}


def _flip_unused_bits(sig: str) -> str:
    # 32 bytes are 43 base64url characters: the last one carries 4 bits and 2 unused ones
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda sig: sig + "!!",
        lambda sig: sig[:10] + " " + sig[10:],
        lambda sig: sig[:10] + "\n" + sig[10:],
        lambda sig: sig + "=",
        lambda sig: sig.replace("-", "+").replace("_", "/") if ("-" in sig or "_" in sig) else sig + "+",
        lambda sig: sig + "A",  # 44 characters: no longer the 32 bytes of the signature
        _flip_unused_bits,
    ],
)
def test_a_signature_with_stray_or_non_canonical_characters_is_malformed(spoil):
    token = mint(TEST_SECRET, "386", [Scope.READ], 60)
    prefix, body, sig = token.split(".")
    with pytest.raises(InvalidToken):
        verify(TEST_SECRET, f"{prefix}.{body}.{spoil(sig)}")


def test_a_payload_with_stray_characters_is_refused():
    token = mint(TEST_SECRET, "386", [Scope.READ], 60)
    prefix, body, sig = token.split(".")
    with pytest.raises(InvalidToken):
        verify(TEST_SECRET, f"{prefix}.{body}!.{sig}")


def test_private_files_are_created_0600_from_the_start_and_replace_older_0644_ones(tmp_path, monkeypatch):
    modes = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            modes.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    old = os.umask(0)
    try:
        path = tmp_path / "admin_token"
        path.write_text("old")
        path.chmod(0o644)
        run.write_private(path, "new\n")
    finally:
        os.umask(old)
    assert modes == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["admin_token"]


def test_make_run_writes_its_secret_and_admin_token_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("BAOCAO_AUTH_SECRET", raising=False)
    secret = run.auth_secret(tmp_path)
    token_path = run.admin_token(tmp_path, secret)
    for name in ("auth_secret", "admin_token"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert verify(secret, token_path.read_text().strip()).unit == "VN"
