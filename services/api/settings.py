"""Settings of the read API (env prefix BAOCAO_API_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpServiceSettings


class ApiSettings(HttpServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_API_", extra="ignore", populate_by_name=True)

    port: int = 8002
    # where the web front end (services/web) sends the reports unit staff submit
    ingest_url: str = "http://127.0.0.1:8001"
    cache_documents: int = Field(
        default=100_000,
        ge=0,
        description="totals documents from the totals stream the API keeps in memory, about 3 KB each (0: none)",
    )
