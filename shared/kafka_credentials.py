"""The SASL credentials a Kafka client logs in with, and the client options they become.

The broker (deploy/stack.py locally, docker-compose.yml) accepts only SASL/SCRAM-SHA-512 logins
and authorizes every request by ACL, so each client names its principal: ``ingest``,
``aggregate``, ``reader`` (followers of the totals stream), ``unit`` (units' own systems) or
``admin``. They come from the environment:

    BAOCAO_KAFKA_USERNAME, BAOCAO_KAFKA_PASSWORD
    BAOCAO_KAFKA_SASL_MECHANISM      (SCRAM-SHA-512)
    BAOCAO_KAFKA_SECURITY_PROTOCOL   (SASL_PLAINTEXT; SASL_SSL where the broker has TLS)

Without a username a client connects without logging in, which a broker configured as ours
refuses: the broker is what keeps the system closed, not a client's default.

kafka-python and aiokafka take the same option names (``sasl_plain_username`` is their name for
the SCRAM username too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

USERNAME = "BAOCAO_KAFKA_USERNAME"
PASSWORD = "BAOCAO_KAFKA_PASSWORD"
MECHANISM = "BAOCAO_KAFKA_SASL_MECHANISM"
PROTOCOL = "BAOCAO_KAFKA_SECURITY_PROTOCOL"
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
        )

    def options(self) -> dict[str, str]:
        """Keyword arguments for a kafka-python or aiokafka client."""
        return {
            "security_protocol": self.protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def env(self) -> dict[str, str]:
        return {USERNAME: self.username, PASSWORD: self.password, MECHANISM: self.mechanism, PROTOCOL: self.protocol}


def client_options(credentials: KafkaCredentials | None) -> dict[str, str]:
    """Keyword arguments for a kafka-python or aiokafka client ({} without credentials)."""
    return credentials.options() if credentials is not None else {}


def env_options(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Client options from BAOCAO_KAFKA_USERNAME and the rest (the CLI's and tools' way)."""
    return client_options(KafkaCredentials.from_env(env))


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
    return KafkaCredentials.from_env(values)


def principal_env(env: Mapping[str, str], principal: str) -> dict[str, str]:
    """``env`` for a process that logs in as ``principal``: its four BAOCAO_KAFKA_* variables set,
    and the credentials folder (every principal's password) left out."""
    out = {k: v for k, v in env.items() if k != CREDENTIALS_DIR}
    credentials = principal_credentials(env, principal)
    if credentials is not None:
        out.update(credentials.env())
    return out
