"""Run the read API: `python -m services.api` (settings from the environment)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from services.api.settings import ApiSettings
from shared.logs import configure_logging
from shared.settings import describe_missing


def main() -> int:
    try:
        settings = ApiSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.stderr.write(describe_missing(exc) + "\n")
        return 2
    configure_logging("api", settings.log_level)
    import uvicorn

    from services.api.app import create_app
    from shared.header_timeout import header_timeout_protocol

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        http=header_timeout_protocol(settings.header_timeout_seconds),  # slowloris: shared/header_timeout.py
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
