"""Run baocao's own services as local processes: start, wait until ready, stop or kill by pid.

Used by `make run` (deploy/run.py), the end-to-end and chaos tests, and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.stack import ROOT, SERVER_UMASK, free_port, open_private_log, pid_alive
from shared.adapters.kafka_credentials import principal_env

log = logging.getLogger("baocao.run")


class ServiceNotReady(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    """One service (`python -m services.<name>`) with its environment and log file."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.start_command([sys.executable, "-m", self.module, *self.args])

    def start_command(self, argv: list[str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_private_log(self.log_path)
        try:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=fd,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=SERVER_UMASK,  # what a service writes (the aggregator's state, logs) is owner-only
            )
        finally:
            os.close(fd)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, deadline_s: float = 60.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + deadline_s
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceNotReady(f"{self.name} exited; see {self.log_path}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ServiceNotReady(f"{self.name} not ready at {self.url}{path} after {deadline_s}s ({last})")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the crash that chaos tests want."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, wait for a graceful exit, SIGKILL if it does not come."""
        if not self.alive():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


def service_env(endpoints: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**endpoints, "PYTHONUNBUFFERED": "1", **(extra or {})}


def aggregate_process(
    run_dir: Path, env: dict[str, str], name: str = "aggregate", port: int | None = None
) -> ServiceProcess:
    port = port or free_port()
    return ServiceProcess(
        name=name,
        module="services.aggregate",
        port=port,
        env={
            **principal_env(env, "aggregate"),
            "BAOCAO_AGGREGATE_PORT": str(port),
            "BAOCAO_AGGREGATE_DATA_DIR": str(run_dir / name),
        },
        log_path=run_dir / "logs" / f"{name}.log",
        args=["worker"],
    )


# The Kafka principal each HTTP service logs in as (the API follows the totals stream).
KAFKA_PRINCIPALS = {"ingest": "ingest", "api": "reader"}


def http_process(kind: str, run_dir: Path, env: dict[str, str], port: int | None = None) -> ServiceProcess:
    port = port or free_port()
    return ServiceProcess(
        name=kind,
        module=f"services.{kind}",
        port=port,
        env={**principal_env(env, KAFKA_PRINCIPALS[kind]), f"BAOCAO_{kind.upper()}_PORT": str(port)},
        log_path=run_dir / "logs" / f"{kind}.log",
    )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def stop_recorded(pids: dict[str, int], timeout_s: float = 20.0, kill_wait_s: float = 5.0) -> dict[str, int]:
    """Stop processes recorded by pid in an earlier command (make down): SIGTERM to each one's
    process group, SIGKILL to those still alive ``timeout_s`` later, then wait up to
    ``kill_wait_s`` for them to go. Returns those still alive (none, unless a kill failed).

    Every process we start leads its own session, so a recorded pid that does not lead its
    process group is not ours any more (the pid was reused): it is left alone, with a warning.
    """
    targets: dict[str, int] = {}
    for name, pid in pids.items():
        if not pid_alive(pid):
            continue
        if not _leads_its_group(pid):
            log.warning("pid %d (recorded for %s) is not a process we started; leaving it alone", pid, name)
            continue
        targets[name] = pid
        _signal_group(pid, signal.SIGTERM)

    def alive() -> dict[str, int]:
        return {name: pid for name, pid in targets.items() if pid_alive(pid)}

    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, pid in alive().items():
        log.warning("%s (pid %d) still running %.0f s after SIGTERM; sending SIGKILL", name, pid, timeout_s)
        _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + kill_wait_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive()


def answers_ready(url: str, path: str = "/readyz", timeout_s: float = 2.0) -> bool:
    """Whether ``url + path`` answers 200 now (one try)."""
    try:
        with urllib.request.urlopen(url + path, timeout=timeout_s) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False
