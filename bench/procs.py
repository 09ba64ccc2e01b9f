"""What processes used while a phase ran: CPU time and resident memory, from /proc.

Counts each process together with its children. Linux only; elsewhere every figure is 0.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (at most 1,000)."""
    found: list[int] = []
    stack = [pid]
    while stack and len(found) < 1000:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                stack.extend(int(c) for c in task.read_text().split())
            except OSError:
                continue
    return found


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kb(pid: int) -> dict[str, int]:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process and its children, in kB."""
    pids = descendants(pid)
    return {
        "processes": len(pids),
        "peak_rss_kb": sum(_status_kb(p, "VmHWM") for p in pids),
        "rss_kb": sum(_status_kb(p, "VmRSS") for p in pids),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far, in seconds."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


class CpuWatch:
    """CPU used by named processes between start() and stop(), in cores (CPU s / wall s)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def start(self) -> CpuWatch:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._start["bench"] = time.process_time()
        self._wall = time.perf_counter()
        return self

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall
        used = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        used["bench"] = time.process_time() - self._start["bench"]
        return {
            "seconds": round(wall, 2),
            "cores": {name: round(cpu / wall, 2) if wall > 0 else 0.0 for name, cpu in used.items()},
        }
