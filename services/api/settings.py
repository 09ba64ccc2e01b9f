"""Settings of the read API (env prefix BAOCAO_API_)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpServiceSettings


class ApiSettings(HttpServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_API_", extra="ignore", populate_by_name=True)

    port: int = 8002
    # where the web front end (services/api/web) sends the reports unit staff submit
    ingest_url: str = "http://127.0.0.1:8001"
    # the web pages' file upload takes files of up to 4 MB in a multipart body
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024 + 64 * 1024,
        ge=1,
        description="larger request bodies get 413 before any route or token check reads them",
    )
    max_agencies_per_unit: int = Field(
        default=500, ge=1, description="agencies one commune, district or province may have registered under it"
    )
    max_streams_per_token: int = Field(
        default=4, ge=1, description="server-sent event streams one token may hold open at once (429 past it)"
    )
    expensive_reads_per_second: float = Field(
        default=20.0,
        gt=0,
        description=(
            "unit searches, completeness lists and re-mapped totals one token may ask per second on average"
            " (429 with Retry-After past it); totals and drill-downs are not counted"
        ),
    )
    expensive_reads_burst: int = Field(
        default=60, ge=1, description="expensive reads one token may ask at once before the rate applies"
    )
    web_max_streams_per_session: int = Field(
        default=3, ge=1, description="live-update streams one web session may hold open at once (429 past it)"
    )
    web_stream_recheck_seconds: float = Field(
        default=1.0,
        gt=0,
        description="how often the web's live-update streams check that the session is open and its token not revoked",
    )
    web_origin: str = Field(
        default="",
        description=(
            "the pages' public origin, scheme://host[:port] (e.g. https://baocao.example.vn behind a proxy); a"
            " state-changing request under /web/ must come from it. Empty: the origin the request was addressed to"
        ),
    )
    web_cookie_secure: bool | None = Field(
        default=None,
        description="Secure flag of the session cookie; unset: when the request or web_origin is https",
    )
    stream_recheck_seconds: float = Field(
        default=5.0, gt=0, description="how often an open stream checks that its token has not expired or been revoked"
    )
    cache_documents: int = Field(
        default=150_000,
        ge=0,
        description="totals documents from the totals stream the API keeps in memory, about 5 KB each (0: none)",
    )
    cache_answers_mb: int = Field(
        default=64,
        ge=0,
        description=(
            "megabytes of built answers (a unit's totals, a drill-down) the API keeps until the totals stream"
            " changes a document they show (0: none; needs cache_documents)"
        ),
    )
    # what one file uploaded to the web pages (/web/upload/check) may hold; past any, a 413 naming it
    upload_max_rows: int = Field(default=5000, ge=1, description="rows under the header row (blank rows count)")
    upload_max_columns: int = Field(default=64, ge=1, description="columns of the sheet")
    upload_max_cells: int = Field(default=100_000, ge=1, description="cells in the sheet, empty written ones included")
    upload_max_cell_chars: int = Field(default=2000, ge=1, description="characters of one cell")
    upload_max_zip_members: int = Field(default=64, ge=1, description="parts (zip members) of an .xlsx")
    upload_max_part_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1, description="bytes one part of an .xlsx decompresses to"
    )
    upload_max_unzipped_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1, description="bytes all parts of an .xlsx decompress to together"
    )
    upload_workers: int = Field(
        default=2, ge=1, description="processes that parse uploaded files; at most this many files are parsed at once"
    )
    upload_queue: int = Field(
        default=8, ge=0, description="uploaded files that may wait for a parse worker (503 with Retry-After past it)"
    )
    # --- OpenID Connect sign-in (services/api/web/oidc.py); issuer and client id empty: no button ---
    oidc_issuer: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_OIDC_ISSUER", "oidc_issuer"),
        description=(
            "the province's OpenID Connect provider, as its ID tokens name it (https://, or http:// on"
            " localhost); empty: no sign-in through a provider"
        ),
    )
    oidc_client_id: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_OIDC_CLIENT_ID", "oidc_client_id"),
        description="this site's client id at the provider",
    )
    oidc_client_secret: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("BAOCAO_OIDC_CLIENT_SECRET", "oidc_client_secret"),
        description="this site's client secret at the provider",
    )
    oidc_name: str = Field(
        default="",
        validation_alias=AliasChoices("BAOCAO_OIDC_NAME", "oidc_name"),
        description="the provider's name on the login page's button (\"Đăng nhập bằng <name>\")",
    )

    @model_validator(mode="after")
    def _oidc_complete(self) -> ApiSettings:
        """A provider is configured whole or not at all."""
        if not self.oidc_issuer and not self.oidc_client_id:
            return self
        for name, value in (
            ("BAOCAO_OIDC_ISSUER", self.oidc_issuer),
            ("BAOCAO_OIDC_CLIENT_ID", self.oidc_client_id),
            ("BAOCAO_OIDC_CLIENT_SECRET", self.oidc_client_secret.get_secret_value()),
        ):
            if not value:
                raise ValueError(f"{name} is empty, but an OpenID Connect provider is configured: set all three")
        parts = urlsplit(self.oidc_issuer)
        loopback = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
        if not (parts.scheme == "https" or loopback) or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(
                f"BAOCAO_OIDC_ISSUER must be an https:// URL without query or fragment (http:// only on localhost),"
                f" not {self.oidc_issuer!r}"
            )
        return self
