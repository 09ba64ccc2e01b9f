"""deploy/stack.py's handling of secrets, without servers: the argv it builds to format Kafka's
storage holds no password, the database's users file holds keys a SCRAM client can log in with
and not the password, and URIs with a login are redacted for output."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import subprocess
from pathlib import Path

from deploy import stack
from shared.adapters.mongo import redact_uri


def test_the_storage_format_argv_holds_no_password(tmp_path, monkeypatch):
    passwords = {"admin": "adm-Secret_1", "ingest": "ing-Secret_2", "unit": "unit-Secret_3"}
    seen = {}

    def fake_run(argv, **kwargs):
        argfile = next(a[1:] for a in argv if a.startswith("@"))
        seen["argv"] = argv
        seen["umask"] = kwargs.get("umask")
        seen["mode"] = stat.S_IMODE(os.stat(argfile).st_mode)
        seen["args"] = Path(argfile).read_text()
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(stack.subprocess, "run", fake_run)
    props = tmp_path / "server.properties"
    stack.format_kafka_storage(["java", "-cp", "lib/*"], tmp_path, "cluster", props, passwords)
    argv = " ".join(seen["argv"])
    assert not [p for p in passwords.values() if p in argv]
    assert "StorageTool" not in argv  # the main class and its arguments are in the file
    for name, password in passwords.items():
        assert f'"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"' in seen["args"]
    assert seen["mode"] == 0o600
    assert seen["umask"] == 0o077
    assert not list(tmp_path.glob("*.args")), "the argument file outlived the format"


def test_a_users_line_lets_a_scram_client_prove_the_password_and_holds_no_password():
    # RFC 7677's example user (password "pencil"): the keys follow from salt and iterations.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    line = stack.scram_sha256_user("user", "pencil", iterations=4096, salt=salt)
    name, mechanism, iterations, salt64, stored64, server64 = line.split()
    assert (name, mechanism, iterations, salt64) == ("user", "SCRAM-SHA-256", "4096", "W22ZaJ0SNY7soEsUEjb6gQ==")
    assert "pencil" not in line
    # The RFC's conversation: the client's proof checks against the stored key, and the server's
    # signature is the RFC's.
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    stored = base64.b64decode(stored64)
    signature = hmac.new(stored, auth_message, "sha256").digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored
    server_signature = hmac.new(base64.b64decode(server64), auth_message, "sha256").digest()
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_a_fresh_users_line_has_its_own_salt():
    assert stack.scram_sha256_user("u", "p").split()[3] != stack.scram_sha256_user("u", "p").split()[3]


def test_the_local_uri_carries_the_login_and_output_hides_it():
    uri = stack.mongodb_uri(27017, "pa-ss_word")
    assert uri.startswith("mongodb://baocao:pa-ss_word@127.0.0.1:27017/")
    assert "authMechanism=SCRAM-SHA-256" in uri
    assert "pa-ss_word" not in redact_uri(uri)
    assert redact_uri(uri).startswith("mongodb://baocao:***@127.0.0.1:27017/")
    assert redact_uri("mongodb://127.0.0.1:1/") == "mongodb://127.0.0.1:1/"


def test_a_profile_password_is_drawn_once_and_kept_owner_only(tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "RUN", tmp_path)
    profile = stack.Profile("p")
    first = stack.mongodb_password(profile, create=True)
    assert stack.mongodb_password(profile) == first
    assert stat.S_IMODE(stack.mongodb_credentials_file(profile).stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.mongodb_credentials_file(profile).parent.stat().st_mode) == 0o700


def test_restrict_tree_takes_group_and_other_bits_away(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    f = tmp_path / "d" / "e" / "f"
    f.write_text("x")
    os.chmod(f, 0o644)
    os.chmod(tmp_path / "d", 0o755)
    stack.restrict_tree(tmp_path)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_env_prints_exports_a_shell_reads_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stack, "RUN", tmp_path)
    uri = stack.mongodb_uri(27017, "pa-ss_word")
    stack.Profile("p").save({"endpoints": {"MONGODB_URI": uri}})
    assert stack.main(["env", "--profile", "p"]) == 0
    exports = capsys.readouterr().out
    shell = subprocess.run(
        ["bash", "-c", exports + 'printf %s "$MONGODB_URI"'], capture_output=True, text=True, check=True
    )
    assert shell.stdout == uri
