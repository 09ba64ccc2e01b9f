"""`python -m deploy.run up/down` (make run / make down) with stand-in services: small Python
HTTP servers started as real child processes that answer /readyz (one can be made to ignore
SIGTERM), under a profile in a temporary .run/. Kafka, the database and topic creation are
replaced; everything else (ports, pids, stack.json, urls.env, the lock, stopping) is the real code.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy import processes, run, stack
from deploy.processes import ServiceProcess
from tools import cli

FAKE_SERVICE = """\
import http.server, os, signal, sys
port = None
for arg in sys.argv[1:]:  # Prometheus is started with --web.listen-address=127.0.0.1:<port>
    if arg.startswith("--web.listen-address="):
        port = int(arg.rsplit(":", 1)[1])
if port is None:
    port = int(os.environ["FAKE_PORT"])
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path in ("/readyz", "/-/ready") else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

HOLD_LOCK = """\
import sys, time
from pathlib import Path
from deploy import run, stack
stack.RUN = Path(sys.argv[1])
with run.profile_lock(stack.Profile(sys.argv[2])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
"""

ENDPOINTS = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URI": "mongodb://127.0.0.1:1/"}


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.profile = stack.Profile("t")
        self.started: list[ServiceProcess] = []
        self.stack_starts = 0
        self.ignore_term: set[str] = set()
        self.script = tmp_path / "fake_service.py"
        self.script.write_text(f"#!{sys.executable}\n{FAKE_SERVICE}")
        self.script.chmod(0o755)

    def recorded(self) -> dict[str, dict]:
        return self.profile.load().get("services") or {}

    def pids(self) -> dict[str, int]:
        return {name: int(s["pid"]) for name, s in self.recorded().items()}


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setattr(stack, "RUN", tmp_path / "run")
    monkeypatch.setenv("BAOCAO_AUTH_SECRET", "s" * 48)
    for name in run.DEFAULT_PORTS:  # never the real default ports: something may be listening there
        monkeypatch.setenv(f"BAOCAO_{name.upper()}_PORT", str(stack.free_port()))

    def fake_stack_start(profile):
        w.stack_starts += 1
        return dict(ENDPOINTS)

    def fake_start(self):
        self.env = {**self.env, "FAKE_PORT": str(self.port)}
        if self.name in w.ignore_term:
            self.env["FAKE_IGNORE_TERM"] = "1"
        self.start_command([sys.executable, str(w.script)])

    original_start_command = ServiceProcess.start_command

    def tracked_start_command(self, argv):
        original_start_command(self, argv)
        w.started.append(self)

    monkeypatch.setattr(stack, "start", fake_stack_start)
    monkeypatch.setattr("tools.topics.create_topics", lambda bootstrap, **kwargs: None)
    monkeypatch.setattr(ServiceProcess, "start", fake_start)
    monkeypatch.setattr(ServiceProcess, "start_command", tracked_start_command)
    monkeypatch.setattr(run, "prometheus_binary", lambda: str(w.script))
    monkeypatch.setattr(run, "STOP_TIMEOUT_S", 1.0)
    # the demo's admin account lives in MongoDB, which this world does not start
    monkeypatch.setattr(run, "admin_account", lambda run_dir, endpoints: run_dir / "admin_password")
    yield w
    for svc in w.started:  # whatever a failed test left running
        if svc.alive():
            assert svc.proc is not None
            os.killpg(svc.proc.pid, signal.SIGKILL)
        if svc.proc is not None:
            svc.proc.wait()


def test_a_second_up_reuses_the_running_services_and_starts_nothing(world, capsys):
    assert run.up(world.profile, demo=False) == 0
    first = capsys.readouterr().out
    recorded = world.recorded()
    assert set(recorded) == {"aggregate", "ingest", "api", "prometheus"} and len(world.started) == 4

    assert run.up(world.profile, demo=False) == 0
    second = capsys.readouterr().out
    assert len(world.started) == 4 and world.stack_starts == 1  # nothing started the second time
    assert world.recorded() == recorded
    assert "baocao is running:" in second
    for s in recorded.values():
        assert s["url"] in first and s["url"] in second
    assert all(stack.pid_alive(pid) for pid in world.pids().values())


def test_up_with_only_some_services_alive_stops_the_recorded_ones_and_starts_afresh(world, caplog):
    world.ignore_term = {"aggregate"}
    assert run.up(world.profile, demo=False) == 0
    old = world.pids()
    next(s for s in world.started if s.name == "ingest").kill()

    with caplog.at_level(logging.WARNING, logger="baocao.run"):
        assert run.up(world.profile, demo=False) == 0
    new = world.pids()
    assert set(new) == set(old) and not set(new.values()) & set(old.values())
    assert not any(stack.pid_alive(pid) for pid in old.values())  # the SIGTERM-ignoring one too
    assert all(stack.pid_alive(pid) for pid in new.values())
    assert "only some of the services recorded for profile t are running" in caplog.text
    assert "sending SIGKILL" in caplog.text


def test_down_stops_everything_it_started_even_a_process_that_ignores_sigterm(world, caplog):
    world.ignore_term = {"api"}
    assert run.up(world.profile, demo=False) == 0
    pids = world.pids()
    assert "prometheus" in pids and world.profile.urls_file.exists()

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="baocao.run"):
        assert run.down(world.profile) == 0
    assert time.monotonic() - started < run.STOP_TIMEOUT_S + 5
    assert not [name for name, pid in pids.items() if stack.pid_alive(pid)]
    assert "api (pid" in caplog.text and "sending SIGKILL" in caplog.text
    assert world.recorded() == {} and not world.profile.urls_file.exists()


def test_stop_recorded_leaves_alone_a_pid_that_is_not_a_process_it_started(world):
    # The test process itself does not lead its own process group (a recorded pid reused by
    # another process looks like this): it must not be signalled.
    if os.getpgid(0) == os.getpid():
        pytest.skip("this test process leads its process group")
    assert processes.stop_recorded({"someone": os.getpid()}, timeout_s=0.1) == {}


def _hold_lock(world, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(stack.RUN), world.profile.name, str(seconds)],
        cwd=stack.ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_up_of_the_profile_waits_for_the_first_and_gives_up_after_the_wait(world, monkeypatch):
    holder = _hold_lock(world, 30)
    try:
        monkeypatch.setattr(run, "LOCK_WAIT_S", 0.5)
        with pytest.raises(
            stack.StackError, match=rf"another `up` or `down` of profile t is running \(pid {holder.pid}"
        ):
            run.up(world.profile, demo=False)
        assert world.started == [] and world.stack_starts == 0
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_second_up_starts_once_the_first_has_finished(world, caplog):
    holder = _hold_lock(world, 1.5)
    try:
        with caplog.at_level(logging.INFO, logger="baocao.run"):
            assert run.up(world.profile, demo=False) == 0
        # it waited for the holder's lock (the holder's process may take a moment more to exit
        # after releasing it, on a loaded machine: its exit is waited for, not polled)
        assert f"is running (pid {holder.pid}); waiting" in caplog.text
        assert holder.wait(timeout=30) == 0
    finally:
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_taken_default_port_is_replaced_warned_about_and_written_to_urls_env(world, monkeypatch, caplog, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.delenv("BAOCAO_INGEST_PORT")
        monkeypatch.setitem(run.DEFAULT_PORTS, "ingest", port)
        with caplog.at_level(logging.WARNING, logger="baocao.run"):
            assert run.up(world.profile, demo=False) == 0
    out = capsys.readouterr().out
    ingest = world.recorded()["ingest"]["url"]
    assert ingest != f"http://127.0.0.1:{port}"
    assert f"port {port} for ingest is taken; ingest listens on {ingest.rsplit(':', 1)[1]} instead" in caplog.text
    urls = world.profile.urls()
    assert urls == {
        "BAOCAO_INGEST_URL": ingest,
        "BAOCAO_API_URL": world.recorded()["api"]["url"],
        "BAOCAO_AGGREGATE_URL": world.recorded()["aggregate"]["url"],
        "BAOCAO_PROMETHEUS_URL": world.recorded()["prometheus"]["url"],
    }
    assert str(world.profile.urls_file) in out and "the baocao CLI reads it" in out
    # ... and the CLI, given nothing else, talks to that port
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, "t", environ={}) == ingest
