"""Bring the whole local system up or down: servers, topics, the three services, demo data.

    python -m deploy.run up [--demo]   # what `make run` calls
    python -m deploy.run status
    python -m deploy.run down          # what `make down` calls

Services run in the background; their pids are kept in .run/<profile>/services.json and `down`
stops exactly those. The token signing key is generated once into .run/<profile>/auth_secret
(git-ignored, mode 600) unless BAOCAO_AUTH_SECRET is set; an admin token is written next to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from pathlib import Path

from deploy import stack
from deploy.processes import (
    ServiceNotReady,
    ServiceProcess,
    aggregate_process,
    http_process,
    service_env,
    stop_recorded,
)

log = logging.getLogger("baocao.run")

DEFAULT_PORTS = {"ingest": 8001, "api": 8002, "aggregate": 6066, "prometheus": 9090}


def port_for(name: str) -> int:
    wanted = int(os.environ.get(f"BAOCAO_{name.upper()}_PORT", DEFAULT_PORTS[name]))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            return stack.free_port()


def auth_secret(run_dir: Path) -> str:
    if os.environ.get("BAOCAO_AUTH_SECRET"):
        return os.environ["BAOCAO_AUTH_SECRET"]
    path = run_dir / "auth_secret"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def up(profile: stack.Profile, demo: bool) -> int:
    from shared.auth import Scope, mint
    from tools.topics import create_topics

    endpoints = stack.start(profile)
    create_topics(endpoints["KAFKA_BOOTSTRAP_SERVERS"])
    run_dir = profile.dir
    secret = auth_secret(run_dir)
    env = service_env(endpoints, {"BAOCAO_AUTH_SECRET": secret})
    services = [
        aggregate_process(run_dir, env, port=port_for("aggregate")),
        http_process("ingest", run_dir, env, port=port_for("ingest")),
        http_process("api", run_dir, env, port=port_for("api")),
    ]
    for svc in services:
        svc.start()
    state = profile.load()
    state["services"] = {s.name: {"pid": s.pid, "url": s.url} for s in services}
    profile.save(state)
    try:
        for svc in services:
            svc.wait_ready(90)
    except ServiceNotReady as exc:
        log.error("%s", exc)
        return 1
    token = mint(secret, "VN", list(Scope), 7 * 86400)
    token_path = run_dir / "admin_token"
    token_path.write_text(token + "\n")
    token_path.chmod(0o600)
    ingest, api, aggregate = services[1].url, services[2].url, services[0].url
    if demo:
        from tools.cli import load_demo

        counts = load_demo(api, ingest, token)
        log.info("demo data submitted: %s", counts)
    prom = _start_prometheus(profile, services)
    lines = [
        "",
        "baocao is running:",
        f"  ingest      {ingest}   (POST /v1/reports, docs at {ingest}/docs)",
        f"  api         {api}   (GET /v1/units/38/totals?period=2020-12, docs at {api}/docs)",
        f"  aggregate   {aggregate}   (/metrics, /readyz)",
        f"  kafka       {endpoints['KAFKA_BOOTSTRAP_SERVERS']}",
        f"  mongodb     {endpoints['MONGODB_URI']}",
    ]
    if prom:
        lines.append(f"  prometheus  {prom}")
    lines += [
        f"  logs        {run_dir}/logs/",
        "",
        f"Admin token (whole country, all scopes, 7 days) in {token_path}:",
        f"  export BAOCAO_TOKEN=$(cat {token_path})",
        f"  curl -H \"Authorization: Bearer $BAOCAO_TOKEN\" '{api}/v1/units/386/totals?period=2020-12'",
        "Mint a token for one unit:",
        f"  BAOCAO_AUTH_SECRET=$(cat {run_dir}/auth_secret) \\",
        "    .venv/bin/baocao token mint --unit 14923 --scopes submit,read",
        "Stop everything: make down",
    ]
    print("\n".join(lines))  # the command's output for the person who ran it
    return 0


PROMETHEUS_DIR = stack.ROOT / "deploy" / "prometheus"


def prometheus_config(ingest: str, api: str, aggregate: str) -> str:
    template = (PROMETHEUS_DIR / "prometheus.local.yml.tmpl").read_text()
    for key, value in {
        "INGEST": ingest,
        "API": api,
        "AGGREGATE": aggregate,
        "RULES": str(PROMETHEUS_DIR / "alerts.yml"),
    }.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _start_prometheus(profile: stack.Profile, services: list[ServiceProcess]) -> str | None:
    """A local Prometheus (Debian's package) scraping the three services; None if not installed."""
    import shutil

    binary = shutil.which("prometheus") or str(stack.CACHE / "bin" / "prometheus")
    if not Path(binary).exists():
        log.warning("prometheus is not installed; skipping the local Prometheus server")
        return None
    hosts = {s.name: s.url.removeprefix("http://") for s in services}
    pdir = profile.dir / "prometheus"
    pdir.mkdir(parents=True, exist_ok=True)
    config = pdir / "prometheus.yml"
    config.write_text(prometheus_config(hosts["ingest"], hosts["api"], hosts["aggregate"]))
    port = port_for("prometheus")
    proc = ServiceProcess("prometheus", "", port, {}, profile.dir / "logs" / "prometheus.log")
    proc.start_command(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={pdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
    )
    state = profile.load()
    state.setdefault("services", {})["prometheus"] = {"pid": proc.pid, "url": proc.url}
    profile.save(state)
    try:
        proc.wait_ready(30, path="/-/ready")
    except ServiceNotReady as exc:
        log.warning("%s", exc)
        return None
    return proc.url


def down(profile: stack.Profile) -> int:
    state = profile.load()
    pids = {name: int(s["pid"]) for name, s in (state.get("services") or {}).items() if s.get("pid")}
    stop_recorded(pids)
    state.pop("services", None)
    profile.save(state)
    stack.stop(profile)
    return 0


def status(profile: stack.Profile) -> int:
    from deploy.stack import pid_alive

    for name, line in stack.status(profile).items():
        print(f"{name}: {line}")
    for name, s in (profile.load().get("services") or {}).items():
        alive = pid_alive(int(s["pid"]))
        print(f"{name}: {'running' if alive else 'stopped'} (pid {s['pid']}, {s['url']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m deploy.run")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--profile", default=os.environ.get("BAOCAO_PROFILE", "dev"))
    parser.add_argument("--demo", action="store_true", help="load the demo data drawn from the seeds")
    args = parser.parse_args(argv)
    profile = stack.Profile(args.profile)
    try:
        if args.command == "up":
            return up(profile, args.demo)
        if args.command == "down":
            return down(profile)
        return status(profile)
    except stack.StackError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
