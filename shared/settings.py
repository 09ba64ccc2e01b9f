"""Settings shared by the services. Each service has one settings class with its own env prefix
(BAOCAO_INGEST_, BAOCAO_AGGREGATE_, BAOCAO_API_); the connection settings are also read from the
plain names every Kafka/MongoDB tool knows (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.adapters.kafka_credentials import DEFAULT_MECHANISM, DEFAULT_PROTOCOL, KafkaCredentials

# MongoDB's read preference modes (shared/adapters/mongo.py READ_PREFERENCES)
ReadPreference = Literal["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"]


class ServiceSettings(BaseSettings):
    """Connection settings every service needs. They have no default: a service started without
    them stops at once and says which variable is missing."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="host:port[,host:port] of the Kafka brokers",
    )
    kafka_username: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_KAFKA_USERNAME", "kafka_username"),
        description="the SASL principal this service logs in to Kafka as (ingest, aggregate, reader)",
    )
    kafka_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("BAOCAO_KAFKA_PASSWORD", "kafka_password")
    )
    kafka_sasl_mechanism: str = Field(
        default=DEFAULT_MECHANISM,
        validation_alias=AliasChoices("BAOCAO_KAFKA_SASL_MECHANISM", "kafka_sasl_mechanism"),
    )
    kafka_security_protocol: str = Field(
        default=DEFAULT_PROTOCOL,
        validation_alias=AliasChoices("BAOCAO_KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"),
        description="SASL_PLAINTEXT, or SASL_SSL where the brokers have TLS",
    )
    kafka_ssl_cafile: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_KAFKA_SSL_CAFILE", "kafka_ssl_cafile"),
        description="with SASL_SSL: PEM file of the CA(s) that signed the brokers' certificates (empty: the system's)",
    )
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        validation_alias=AliasChoices("BAOCAO_KAFKA_REPLICATION_FACTOR", "kafka_replication_factor"),
        description="copies of each partition of a topic a service declares (tools/topics.py makes the rest)",
    )
    mongodb_uri: str = Field(
        validation_alias=AliasChoices("MONGODB_URI", "mongodb_uri"),
        description="mongodb:// URI of the MongoDB-compatible database",
    )
    mongodb_database: str = Field(
        default="baocao", validation_alias=AliasChoices("MONGODB_DATABASE", "mongodb_database")
    )
    mongodb_read_preference: ReadPreference = Field(
        default="primary",
        validation_alias=AliasChoices("MONGODB_READ_PREFERENCE", "mongodb_read_preference"),
        description="where the API's reads of totals go on a replica set (all else reads from the primary)",
    )
    reports_topic: str = Field(
        default="reports", validation_alias=AliasChoices("BAOCAO_REPORTS_TOPIC", "reports_topic")
    )
    dead_letter_topic: str = Field(
        default="reports.dead-letter",
        validation_alias=AliasChoices("BAOCAO_DEAD_LETTER_TOPIC", "dead_letter_topic"),
    )
    totals_topic: str = Field(default="totals", validation_alias=AliasChoices("BAOCAO_TOTALS_TOPIC", "totals_topic"))
    provinces: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_PROVINCES", "provinces"),
        description="Comma-separated province codes to load (empty: the whole country)",
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("BAOCAO_LOG_LEVEL", "log_level"))

    @model_validator(mode="after")
    def _password_with_username(self) -> ServiceSettings:
        if self.kafka_username and not self.kafka_password.get_secret_value():
            raise ValueError("BAOCAO_KAFKA_PASSWORD is required when BAOCAO_KAFKA_USERNAME is set")
        return self

    @property
    def kafka_credentials(self) -> KafkaCredentials | None:
        """None without a username: the client then does not log in (our brokers refuse it)."""
        if not self.kafka_username:
            return None
        return KafkaCredentials(
            self.kafka_username,
            self.kafka_password.get_secret_value(),
            self.kafka_sasl_mechanism,
            self.kafka_security_protocol,
            self.kafka_ssl_cafile,
        )

    @property
    def province_codes(self) -> list[str] | None:
        codes = [c.strip() for c in self.provinces.split(",") if c.strip()]
        return codes or None


def describe_missing(exc: Exception) -> str:
    """A one-line message for a settings ValidationError: which variables are missing or wrong."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "?"
        parts.append(f"{name}: {err['msg']}")
    return "configuration error: " + "; ".join(parts)


class HttpServiceSettings(ServiceSettings):
    """Settings of the FastAPI services: where to listen and the token signing key."""

    host: str = "127.0.0.1"
    port: int = 8000
    auth_secret: SecretStr = Field(
        validation_alias=AliasChoices("BAOCAO_AUTH_SECRET", "auth_secret"),
        description="HMAC key that signs access tokens (at least 32 characters); no default",
        min_length=32,
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="larger request bodies get 413 before any route or token check reads them",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a request's line and headers must arrive within this, or 408 and the connection closed",
    )
    body_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "a request's body must arrive within this after its headers, plus a second per"
            " body_min_bytes_per_second bytes received, or 408 and the connection closed"
        ),
    )
    body_min_bytes_per_second: float = Field(
        default=4096.0, gt=0, description="the slowest a long body may arrive and keep its connection"
    )
