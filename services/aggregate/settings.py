"""Settings of the aggregate worker (env prefix BAOCAO_AGGREGATE_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.aggregate.projector import DEFAULT_CACHE_DOCUMENTS, DEFAULT_CACHE_LEDGER_ENTRIES
from shared.settings import ServiceSettings


class AggregateSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_AGGREGATE_", extra="ignore", populate_by_name=True)

    app_id: str = Field(default="baocao-aggregate", description="faust app id = Kafka consumer group")
    host: str = "127.0.0.1"
    port: int = 6066
    batch_max: int = Field(default=2000, ge=1, description="reports per flush at most")
    batch_within: float = Field(default=0.2, gt=0, description="seconds to wait to fill a flush")
    cache_documents: int = Field(
        default=DEFAULT_CACHE_DOCUMENTS, ge=0, description="totals documents kept in memory between batches"
    )
    cache_ledger_entries: int = Field(
        default=DEFAULT_CACHE_LEDGER_ENTRIES,
        ge=0,
        description="report entries of unit ledgers kept in memory between batches (about 450 bytes each)",
    )
    data_dir: str = ".run/aggregate"
    registry_refresh_seconds: float = 10.0
    session_timeout_seconds: float = Field(
        default=10.0, ge=6, description="a killed worker's partitions move to the others after this"
    )
