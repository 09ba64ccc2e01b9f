"""Settings of the aggregate worker (env prefix BAOCAO_AGGREGATE_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AggregateSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_AGGREGATE_", extra="ignore", populate_by_name=True)

    auth_secret: SecretStr = Field(
        validation_alias=AliasChoices("BAOCAO_AUTH_SECRET", "auth_secret"),
        description=(
            "the key that signs access tokens (at least 32 characters); no default: the worker checks the tokens"
            " of reports produced straight to Kafka and the stamps of ingest's"
        ),
        min_length=32,
    )
    app_id: str = Field(default="baocao-aggregate", description="faust app id = Kafka consumer group")
    host: str = "127.0.0.1"
    port: int = 6066
    batch_max: int = Field(default=2000, ge=1, description="messages per batch at most")
    batch_within: float = Field(default=0.05, gt=0, description="seconds to wait to fill a batch")
    flush_interval: float = Field(
        default=0.05,
        gt=0,
        description=(
            "seconds at least between the starts of two publications of changed totals on the totals"
            " topic (MongoDB is written behind them, as fast as it takes them)"
        ),
    )
    write_interval: float = Field(
        default=0.5,
        ge=0,
        description="seconds at least between the starts of two bulk writes of published totals to MongoDB",
    )
    flush_documents: int = Field(
        default=50_000,
        ge=1,
        description="stop applying until the publication in progress ends when this many documents wait for the next",
    )
    data_dir: str = ".run/aggregate"
    entries_on_disk: bool = Field(
        default=True, description="keep every report's latest revision in SQLite files under data_dir, not in memory"
    )
    snapshot_every: int = Field(
        default=10_000,
        ge=0,
        description=(
            "changelog records of a partition between two snapshots of its state in MongoDB: whoever takes the"
            " partition next replays at most about this many records after loading the snapshot (0: no snapshots,"
            " every restore replays the whole changelog)"
        ),
    )
    entries_cache_mb: int = Field(default=8, ge=1, description="SQLite page cache per partition's entry file")
    registry_refresh_seconds: float = 10.0
    revocations_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "seconds between two reads of the revoked token ids from MongoDB: a revocation reaches the"
            " worker within this plus the time one read takes"
        ),
    )
    session_timeout_seconds: float = Field(
        default=10.0, ge=6, description="a killed worker's partitions move to the others after this"
    )
