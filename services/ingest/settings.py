"""Settings of the ingest service (env prefix BAOCAO_INGEST_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpServiceSettings


class IngestSettings(HttpServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_INGEST_", extra="ignore", populate_by_name=True)

    port: int = 8001
    max_batch: int = Field(default=1000, ge=1, le=10000)
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    rate_limit_per_second: float = Field(default=500.0, gt=0, description="reports per second per token")
    rate_limit_burst: int = Field(default=2000, ge=1, description="reports a token may send at once")
