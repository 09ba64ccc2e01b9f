"""Run the aggregate worker: `python -m services.aggregate` (settings from the environment)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from services.aggregate.settings import AggregateSettings
from shared.logs import configure_logging, dict_config
from shared.settings import describe_missing


def main() -> int:
    try:
        settings = AggregateSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.stderr.write(describe_missing(exc) + "\n")
        return 2
    configure_logging("aggregate", settings.log_level)
    import mode.loop

    mode.loop.use("uvloop")  # libuv's event loop, as the HTTP services get from uvicorn
    from faust import Worker

    from services.aggregate.app import create_app

    app = create_app(settings)
    # faust's worker sets up logging again when it starts: the same JSON lines, not its colours
    worker = Worker(app, loglevel=settings.log_level, quiet=True, logging_config=dict_config(settings.log_level))
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
