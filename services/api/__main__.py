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
    from services.api.app import create_app
    from shared.http.header_timeout import serve

    serve(
        create_app(settings),
        settings.host,
        settings.port,
        settings.header_timeout_seconds,
        settings.body_grace_seconds,
        settings.body_min_bytes_per_second,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
