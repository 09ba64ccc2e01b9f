"""Structured logs: one JSON object per line on stderr, the same shape in every service."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


# Client libraries are chatty at INFO (every connection, every rebalance step).
NOISY_LOGGERS = ("kafka", "aiokafka", "pymongo", "faust", "mode", "uvicorn.access")


def configure_logging(service: str, level: str = "INFO") -> None:
    logging.config.dictConfig(dict_config(level))
    logging.getLogger("baocao").info("starting", extra={"service": service})


def dict_config(level: str = "INFO") -> dict[str, Any]:
    """JSON lines on stderr at ``level``, the noisy libraries at WARNING or above, as a
    logging.config dictionary: also for frameworks that install their own logging when they
    start (faust's worker does)."""
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name in NOISY_LOGGERS},
    }
