"""The SASL credentials a Kafka client logs in with, and the client options they become.

The broker (deploy/stack.py locally, docker-compose.yml) accepts only SASL/SCRAM-SHA-512 logins
and authorizes every request by ACL, so each client names its principal: ``ingest``,
``aggregate``, ``reader`` (followers of the totals stream), ``unit`` (units' own systems) or
``admin``. They come from the environment:

    BAOCAO_KAFKA_USERNAME, BAOCAO_KAFKA_PASSWORD
    BAOCAO_KAFKA_SASL_MECHANISM      (SCRAM-SHA-512)
    BAOCAO_KAFKA_SECURITY_PROTOCOL   (SASL_PLAINTEXT; SASL_SSL where the broker has TLS)
    BAOCAO_KAFKA_SSL_CAFILE          (with SASL_SSL: the PEM bundle of the CA(s) that signed the
                                      brokers' certificates; empty: the system's trusted CAs)

Without a username a client connects without logging in, which a broker configured as ours
refuses: the broker is what keeps the system closed, not a client's default.

kafka-python and aiokafka take the same option names (``sasl_plain_username`` is their name for
the SCRAM username too), ``ssl_context`` included: with SASL_SSL both get one ``ssl.SSLContext``
that checks the broker's certificate against the CA and its name against the address dialled;
faust takes the same context in its SASLCredentials.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USERNAME = "BAOCAO_KAFKA_USERNAME"
PASSWORD = "BAOCAO_KAFKA_PASSWORD"
MECHANISM = "BAOCAO_KAFKA_SASL_MECHANISM"
PROTOCOL = "BAOCAO_KAFKA_SECURITY_PROTOCOL"
SSL_CAFILE = "BAOCAO_KAFKA_SSL_CAFILE"
TLS_PROTOCOLS = ("SASL_SSL", "SSL")
DEFAULT_MECHANISM = "SCRAM-SHA-512"
DEFAULT_PROTOCOL = "SASL_PLAINTEXT"
# Where deploy/stack.py keeps one <principal>.env file per principal (local servers only); the
# service launchers turn it into the four variables above for the service's own principal.
CREDENTIALS_DIR = "BAOCAO_KAFKA_CREDENTIALS_DIR"
# The principals of the local broker: the super user (the broker itself, topics and ACLs, the
# dead-letter tools), the two services, followers of the totals stream, and units' own systems.
PRINCIPALS = ("admin", "ingest", "aggregate", "reader", "unit")


class CredentialsError(ValueError):
    """Credentials that cannot be used: a username without a password, an unknown principal."""


@dataclass(frozen=True)
class KafkaCredentials:
    username: str
    password: str = field(repr=False)
    mechanism: str = DEFAULT_MECHANISM
    protocol: str = DEFAULT_PROTOCOL
    cafile: str = ""

    def __post_init__(self) -> None:
        if self.cafile and not self.tls:
            raise CredentialsError(
                f"{SSL_CAFILE} is set ({self.cafile}) but {PROTOCOL} is {self.protocol}: "
                "a CA is for SASL_SSL (set the protocol, or unset the CA file)"
            )

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaCredentials | None:
        """The credentials named by the environment, None when no username is set."""
        env = os.environ if env is None else env
        username = env.get(USERNAME, "").strip()
        if not username:
            return None
        password = env.get(PASSWORD, "")
        if not password:
            raise CredentialsError(f"{USERNAME} is set ({username}) but {PASSWORD} is empty")
        return cls(
            username,
            password,
            env.get(MECHANISM) or DEFAULT_MECHANISM,
            env.get(PROTOCOL) or DEFAULT_PROTOCOL,
            env.get(SSL_CAFILE, "").strip(),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """With TLS, a client context that verifies the broker's certificate against ``cafile``
        (the system's CAs without one) and its host name; None without TLS."""
        if not self.tls:
            return None
        if self.cafile:
            path = Path(self.cafile)
            if not path.is_file():
                raise CredentialsError(f"{SSL_CAFILE} names {path}, which is not a readable file")
        try:
            # what aiokafka.helpers.create_ssl_context makes without a client certificate, and
            # without its log line in every command's output
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile or None)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialsError(f"{SSL_CAFILE}={self.cafile}: not a PEM CA bundle ({exc})") from None
        # TLS 1.2, whose peers answer a close_notify at once. Under TLS 1.3 a broker need not
        # answer it, and uvloop (the services' loop) then waits its 30 s shutdown timeout before
        # a closed connection counts as closed (MagicStack/uvloop#471): each stop of a client with
        # a fetch in flight (the aggregator's restores) took 30 s.
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    def options(self) -> dict[str, Any]:
        """Keyword arguments for a kafka-python or aiokafka client (``ssl_context`` with TLS)."""
        out: dict[str, Any] = {
            "security_protocol": self.protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        return out

    def env(self) -> dict[str, str]:
        out = {USERNAME: self.username, PASSWORD: self.password, MECHANISM: self.mechanism, PROTOCOL: self.protocol}
        if self.cafile:
            out[SSL_CAFILE] = self.cafile
        return out


def client_options(credentials: KafkaCredentials | None) -> dict[str, Any]:
    """Keyword arguments for a kafka-python or aiokafka client ({} without credentials)."""
    return credentials.options() if credentials is not None else {}


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def principal_credentials(env: Mapping[str, str], principal: str) -> KafkaCredentials | None:
    """The credentials of ``principal`` from BAOCAO_KAFKA_CREDENTIALS_DIR when it is set (local
    servers), else from BAOCAO_KAFKA_USERNAME/PASSWORD, else None."""
    folder = env.get(CREDENTIALS_DIR)
    if not folder:
        return KafkaCredentials.from_env(env)
    path = Path(folder) / f"{principal}.env"
    try:
        values = read_env_file(path)
    except OSError as exc:
        raise CredentialsError(f"no Kafka credentials for principal {principal!r} ({path}: {exc.strerror})") from None
    # how to reach the brokers (protocol, CA) is the same for every principal: the environment's
    # unless the principal's file says
    shared = {k: env[k] for k in (MECHANISM, PROTOCOL, SSL_CAFILE) if env.get(k)}
    return KafkaCredentials.from_env({**shared, **values})


def principal_env(env: Mapping[str, str], principal: str) -> dict[str, str]:
    """``env`` for a process that logs in as ``principal``: its BAOCAO_KAFKA_* login variables set,
    and the credentials folder (every principal's password) left out."""
    out = {k: v for k, v in env.items() if k != CREDENTIALS_DIR}
    credentials = principal_credentials(env, principal)
    if credentials is not None:
        out.update(credentials.env())
    return out
