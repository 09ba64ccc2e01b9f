"""A local certificate authority and the brokers' certificate for one stack profile, made with the
``openssl`` command.

    <folder>/ca.pem             the CA's certificate: what clients trust (BAOCAO_KAFKA_SSL_CAFILE)
    <folder>/broker.p12         the brokers' key and certificate chain (PKCS12 keystore)
    <folder>/broker.p12.pass    the keystore's password (random, drawn here)

The certificate names 127.0.0.1 and localhost (subjectAltName), the only addresses local brokers
listen on, so clients check host names as they would anywhere. The CA's private key is removed
once it has signed: nothing else can be signed with it. The folder is 0700 and every file 0600;
no key or password is ever an argument of a command (openssl reads the password from its file).

A province's own brokers use certificates from its own CA: clients then need only that CA's
certificate (README, "TLS").
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUBJECT_ALT_NAMES = "IP:127.0.0.1,DNS:localhost"
DAYS = 825  # the longest validity clients accept for a server certificate


class TlsError(RuntimeError):
    """The certificates could not be made."""


@dataclass(frozen=True)
class BrokerTls:
    ca: Path
    keystore: Path
    keystore_password_file: Path

    @property
    def keystore_password(self) -> str:
        return self.keystore_password_file.read_text().strip()

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.keystore, self.keystore_password_file))


def broker_tls(folder: Path) -> BrokerTls:
    return BrokerTls(folder / "ca.pem", folder / "broker.p12", folder / "broker.p12.pass")


def _openssl(args: list[str], cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise TlsError(
            "the openssl command is needed to make the local brokers' certificates (apt-get install openssl)"
        )
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False, umask=0o077)
    if done.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {done.stderr.strip()[-1000:]}")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def make_broker_tls(folder: Path, name: str) -> BrokerTls:
    """The profile's CA and broker keystore in ``folder``, made once: files already complete are
    kept, so clients holding the CA keep trusting the brokers across restarts."""
    files = broker_tls(folder)
    if files.complete():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for stale in folder.iterdir():  # what an interrupted attempt left
        stale.unlink()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        [
            "req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(DAYS),
            "-subj", f"/O=baocao/CN=baocao local CA ({name})",
            "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        folder,
    )  # fmt: skip
    _openssl(
        ["req", "-new", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/O=baocao/CN=localhost"], folder
    )
    _write_private(
        folder / "broker.ext",
        f"subjectAltName={SUBJECT_ALT_NAMES}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    _openssl(
        [
            "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
            str(secrets.randbits(63)), "-days", str(DAYS), "-sha256", "-extfile", "broker.ext", "-out", "broker.pem",
        ],
        folder,
    )  # fmt: skip
    _write_private(files.keystore_password_file, secrets.token_urlsafe(24) + "\n")
    _openssl(
        [
            "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
            "-name", "broker", "-out", files.keystore.name, "-passout", f"file:{files.keystore_password_file.name}",
        ],
        folder,
    )  # fmt: skip
    for made in ("ca.key", "broker.key", "broker.csr", "broker.ext", "broker.pem"):
        (folder / made).unlink()
    for path in folder.iterdir():
        os.chmod(path, 0o600)
    return files
