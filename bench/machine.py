"""Where and with what a run was measured: machine, date, versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pymongo", "faust-streaming", "aiokafka", "fastapi", "uvicorn", "pydantic", "httpx")


def _pom_property(pom: Path, name: str) -> str | None:
    try:
        match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    except OSError:
        return None
    return match.group(1).strip() if match else None


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _java() -> str | None:
    try:
        out = subprocess.run([os.environ.get("JAVA", "java"), "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (out.stderr or out.stdout).splitlines()
    return first[0].strip() if first else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "kafka": _pom_property(ROOT / "deploy" / "kafka" / "pom.xml", "kafka.version"),
        "mongo-java-server": _pom_property(
            ROOT / "deploy" / "mongo-java-server" / "pom.xml", "mongo-java-server.version"
        ),
        "java": _java(),
        **{name: _package(name) for name in PACKAGES},
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def now() -> datetime:
    return datetime.now(UTC)


def summary_line(info: dict[str, Any]) -> str:
    """One line naming the machine and the versions, printed above the table."""
    m, v = info["machine"], info["versions"]
    return (
        f"{m['hostname']}: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB,"
        f" load {m['load_average']}"
        f" | Python {v['python']}, Kafka {v['kafka']}, mongo-java-server {v['mongo-java-server']},"
        f" pymongo {v['pymongo']}, faust-streaming {v['faust-streaming']}, aiokafka {v['aiokafka']}"
    )
