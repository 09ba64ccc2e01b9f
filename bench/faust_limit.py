"""The framework's own limit: consume + decode through a faust agent configured as the aggregate
worker's (services/aggregate/app.py faust_app, the same take_events batching and conversion of
events), doing nothing else. Next to the raw aiokafka figure it says what faust's per-message
path costs, and so what share of raw consume any faust worker can reach on this machine.

Run as a process of its own (a faust worker owns its event loop), in the environment of an
aggregate worker of the ``limits`` role: ``python -m bench.faust_limit EXPECTED RESULT``. Once
EXPECTED messages were decoded it writes {"count", "seconds", "failures", "cpu_seconds"} to the
file RESULT (the time runs from the first batch to the last; the processor time is the process's,
all threads); the bench then stops it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.kafka_limits import decode


def main() -> int:
    expected, result = int(sys.argv[1]), Path(sys.argv[2])
    import mode.loop

    mode.loop.use("uvloop")  # as services/aggregate/__main__.py
    from faust import Worker

    from services.aggregate.agents import raw_messages
    from services.aggregate.app import faust_app
    from services.aggregate.settings import AggregateSettings

    settings = AggregateSettings()  # type: ignore[call-arg]  # from the environment, as the service reads it
    app = faust_app(settings)
    topic = app.topic(settings.reports_topic, value_serializer="raw", key_serializer="raw")
    worker = Worker(app, loglevel="warning", quiet=True)

    @app.agent(topic, name="consume_only")
    async def consume_only(stream: Any) -> None:
        count, failures, started, cpu = 0, 0, 0.0, 0.0
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within):
            if not started:
                started, cpu = time.perf_counter(), time.process_time()
            for message in raw_messages(events):
                count += 1
                try:
                    decode(message.value or b"")
                except ValueError:
                    failures += 1
            if count >= expected:
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                partial = result.with_suffix(".part")
                measured = {"count": count, "seconds": seconds, "failures": failures, "cpu_seconds": cpu}
                partial.write_text(json.dumps(measured))
                partial.rename(result)  # whole or absent for the reader, who then stops this process

    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
