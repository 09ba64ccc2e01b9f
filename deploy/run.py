"""Bring the whole local system up or down: servers, topics, the three services, demo data.

    python -m deploy.run up [--demo]   # what `make run` calls
    python -m deploy.run status
    python -m deploy.run down          # what `make down` calls

Services run in the background; their pids and URLs are kept in .run/<profile>/stack.json
("services") and `down` stops exactly those (SIGTERM, SIGKILL after STOP_TIMEOUT_S). A second `up`
while they all answer /readyz reuses them and starts nothing; when only some are alive, it stops
the recorded ones and starts afresh. `up` and `down` of one profile hold .run/<profile>/up.lock,
so a second one waits for the first. The URLs go to .run/<profile>/urls.env, which the CLI reads.
The token signing key is generated once into .run/<profile>/auth_secret (git-ignored, mode 600)
unless BAOCAO_AUTH_SECRET is set; an admin token is written next to it, and the random password of
the web's admin account for the whole country (``admin``, tools/demo.py) in admin_password.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy import stack
from deploy.processes import (
    ServiceNotReady,
    ServiceProcess,
    aggregate_process,
    answers_ready,
    http_process,
    service_env,
    stop_recorded,
)
from deploy.stack import write_private
from shared.adapters.mongo import redact_uri

log = logging.getLogger("baocao.run")

DEFAULT_PORTS = {"ingest": 8001, "api": 8002, "aggregate": 6066, "prometheus": 9090}
SERVICES = ("aggregate", "ingest", "api")  # started by every `up`; prometheus when installed
URL_VARIABLES = {
    "ingest": "BAOCAO_INGEST_URL",
    "api": "BAOCAO_API_URL",
    "aggregate": "BAOCAO_AGGREGATE_URL",
    "prometheus": "BAOCAO_PROMETHEUS_URL",
}
READY_PATHS = {"prometheus": "/-/ready"}
STOP_TIMEOUT_S = 20.0  # SIGTERM, then SIGKILL
LOCK_WAIT_S = 900.0  # a second `up`/`down` of the profile waits this long for the first


def port_for(name: str) -> int:
    wanted = int(os.environ.get(f"BAOCAO_{name.upper()}_PORT", DEFAULT_PORTS[name]))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            pass
    port = stack.free_port()
    log.warning("warning: port %d for %s is taken; %s listens on %d instead (see urls.env)", wanted, name, name, port)
    return port


def auth_secret(run_dir: Path) -> str:
    if os.environ.get("BAOCAO_AUTH_SECRET"):
        return os.environ["BAOCAO_AUTH_SECRET"]
    path = run_dir / "auth_secret"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


@contextmanager
def profile_lock(profile: stack.Profile, wait_s: float | None = None) -> Iterator[None]:
    """Hold .run/<profile>/up.lock (flock) while an `up` or `down` runs; a second one waits for
    the first, up to ``wait_s`` (LOCK_WAIT_S), then gives up with a StackError."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    profile.dir.mkdir(parents=True, exist_ok=True)
    path = profile.dir / "up.lock"
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "?"
                if time.monotonic() >= deadline:
                    raise stack.StackError(
                        f"another `up` or `down` of profile {profile.name} is running (pid {holder}, "
                        f"lock {path}); waited {wait_s:.0f} s. Let it finish, or stop it and run `make down`"
                    ) from None
                if not told:
                    log.info("another `up` or `down` of profile %s is running (pid %s); waiting", profile.name, holder)
                    told = True
                time.sleep(0.2)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def recorded_pids(profile: stack.Profile) -> dict[str, int]:
    services = profile.load().get("services") or {}
    return {name: int(s["pid"]) for name, s in services.items() if s.get("pid")}


def running_services(profile: stack.Profile) -> dict[str, str] | None:
    """The recorded services' URLs if every one of them is alive and ready, else None."""
    services = profile.load().get("services") or {}
    if not set(SERVICES) <= set(services):
        return None
    for name, s in services.items():
        if not (s.get("pid") and stack.pid_alive(int(s["pid"]))):
            return None
        if not answers_ready(s["url"], READY_PATHS.get(name, "/readyz")):
            return None
    return {name: s["url"] for name, s in services.items()}


def write_urls(profile: stack.Profile, urls: dict[str, str]) -> Path:
    """.run/<profile>/urls.env: where each service listens, in shell syntax (the CLI reads it)."""
    path = profile.urls_file
    lines = [
        "# Written by `make run` (python -m deploy.run up), removed by `make down`. The baocao CLI",
        f"# reads it; in a shell: set -a; . {path}; set +a",
        *(f"{URL_VARIABLES[name]}={url}" for name, url in urls.items() if name in URL_VARIABLES),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def admin_token(run_dir: Path, secret: str) -> Path:
    """.run/<profile>/admin_token: kept while valid for another day, minted afresh otherwise."""
    from shared.domain.auth import InvalidToken, Scope, mint, verify

    path = run_dir / "admin_token"
    try:
        verify(secret, path.read_text().strip(), now=time.time() + 86400)
        return path
    except (OSError, InvalidToken):
        pass
    write_private(path, mint(secret, "VN", list(Scope), 7 * 86400) + "\n")
    return path


def admin_account(run_dir: Path, endpoints: dict[str, str]) -> Path:
    """.run/<profile>/admin_password: the password of the demo's admin account for the whole
    country (tools/demo.py), random, owner-only, kept while the account is."""
    import asyncio

    from tools.demo import ensure_admin_account

    path = run_dir / "admin_password"
    database = endpoints.get("MONGODB_DATABASE", "baocao")
    password = asyncio.run(ensure_admin_account(endpoints["MONGODB_URI"], database, path.exists()))
    if password is not None:
        write_private(path, password + "\n")
    return path


def up(profile: stack.Profile, demo: bool) -> int:
    with profile_lock(profile):
        urls = running_services(profile)
        if urls is not None:
            log.info("baocao (profile %s) is already running; reusing it, nothing started", profile.name)
            token_path = admin_token(profile.dir, auth_secret(profile.dir))
            endpoints = profile.load().get("endpoints") or {}
            password_path = admin_account(profile.dir, endpoints)
            print(running_block(profile, urls, endpoints, token_path, write_urls(profile, urls), password_path))
            return 0
        recorded = recorded_pids(profile)
        if recorded:
            log.warning(
                "warning: only some of the services recorded for profile %s are running; "
                "stopping all of them (%s) and starting afresh",
                profile.name,
                ", ".join(f"{n} pid {p}" for n, p in recorded.items()),
            )
            left = stop_recorded(recorded, STOP_TIMEOUT_S)
            if left:
                raise stack.StackError(f"could not stop {left}; stop them by hand, then run `make down`")
            forget_services(profile)
        return start_services(profile, demo)


def start_services(profile: stack.Profile, demo: bool) -> int:
    from tools.topics import create_topics

    profile.urls_file.unlink(missing_ok=True)
    endpoints = stack.start(profile)
    create_topics(endpoints["KAFKA_BOOTSTRAP_SERVERS"], env={**os.environ, **endpoints})
    run_dir = profile.dir
    secret = auth_secret(run_dir)
    env = service_env(endpoints, {"BAOCAO_AUTH_SECRET": secret})
    ingest = http_process("ingest", run_dir, env, port=port_for("ingest"))
    services = [
        aggregate_process(run_dir, env, port=port_for("aggregate")),
        ingest,
        # the web pages the API serves send reports to ingest
        http_process("api", run_dir, {**env, "BAOCAO_API_INGEST_URL": ingest.url}, port=port_for("api")),
    ]
    for svc in services:
        svc.start()
        record_service(profile, svc)  # at once: whatever was started, `down` stops
    try:
        for svc in services:
            svc.wait_ready(90)
    except ServiceNotReady as exc:
        log.error("%s", exc)
        return 1
    token_path = admin_token(run_dir, secret)
    password_path = admin_account(run_dir, endpoints)
    urls = {s.name: s.url for s in services}
    write_urls(profile, urls)
    if demo:
        from shared.adapters.kafka_credentials import principal_env
        from tools.cli import load_demo

        # at the times the units sent them, through ingest's use case in ingest's environment
        ingest_env = principal_env(env, "ingest")
        counts = load_demo(urls["api"], urls["ingest"], token_path.read_text().strip(), ingest_env)
        log.info("demo data submitted: %s", counts)
    prom = _start_prometheus(profile, services)
    if prom:
        urls["prometheus"] = prom
    print(running_block(profile, urls, endpoints, token_path, write_urls(profile, urls), password_path))
    return 0


def record_service(profile: stack.Profile, svc: ServiceProcess) -> None:
    state = profile.load()
    state.setdefault("services", {})[svc.name] = {"pid": svc.pid, "url": svc.url}
    profile.save(state)


def forget_services(profile: stack.Profile, name: str | None = None) -> None:
    state = profile.load()
    if name is None:
        state.pop("services", None)
    else:
        (state.get("services") or {}).pop(name, None)
    profile.save(state)


def running_block(
    profile: stack.Profile,
    urls: dict[str, str],
    endpoints: dict[str, str],
    token_path: Path,
    urls_env: Path,
    password_path: Path | None = None,
) -> str:
    """What `up` prints for the person who ran it."""
    run_dir = profile.dir
    ingest, api, aggregate = urls["ingest"], urls["api"], urls["aggregate"]
    lines = [
        "",
        "baocao is running:",
        f"  web         {api}/web/   (e.g. {api}/web/units/386?period=2020-12)",
        f"  ingest      {ingest}   (POST /v1/reports, docs at {ingest}/docs)",
        f"  api         {api}   (GET /v1/units/38/totals?period=2020-12, docs at {api}/docs)",
        f"  aggregate   {aggregate}   (/metrics, /readyz)",
        f"  kafka       {endpoints.get('KAFKA_BOOTSTRAP_SERVERS', '?')}",
        f"  mongodb     {redact_uri(endpoints.get('MONGODB_URI', '?'))}",
        f"              (login in {stack.mongodb_credentials_file(profile)})",
    ]
    if urls.get("prometheus"):
        lines.append(f"  prometheus  {urls['prometheus']}")
    lines += [
        f"  logs        {run_dir}/logs/",
        f"  URLs in     {urls_env}   (the baocao CLI reads it: --profile {profile.name}, or BAOCAO_PROFILE)",
        "",
    ]
    if password_path is not None:
        lines += [
            f"Web login (whole country, admin): user admin, password in {password_path}",
            f"  cat {password_path}",
        ]
    lines += [
        f"Admin token (whole country, all scopes, 7 days) in {token_path}:",
        f"  export BAOCAO_TOKEN=$(cat {token_path})",
        f"  curl -H \"Authorization: Bearer $BAOCAO_TOKEN\" '{api}/v1/units/386/totals?period=2020-12'",
        "Mint a token for one unit:",
        f"  BAOCAO_AUTH_SECRET=$(cat {run_dir}/auth_secret) \\",
        "    .venv/bin/baocao token mint --unit 14923 --scopes submit,read",
    ]
    creds = endpoints.get("BAOCAO_KAFKA_CREDENTIALS_DIR")
    if creds:
        lines += [
            f"Kafka logins (SASL/SCRAM-SHA-512), one file per principal in {creds}/ (owner-only):",
            f"  set -a; . {creds}/unit.env; set +a      # a unit's system: may only write 'reports',",
            "  .venv/bin/baocao submit FILE --kafka      # with its token (BAOCAO_TOKEN) on each message",
        ]
    lines.append("Stop everything: make down")
    return "\n".join(lines)


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


def prometheus_binary() -> str | None:
    import shutil

    binary = shutil.which("prometheus") or str(stack.CACHE / "bin" / "prometheus")
    return binary if Path(binary).exists() else None


def _start_prometheus(profile: stack.Profile, services: list[ServiceProcess]) -> str | None:
    """A local Prometheus (Debian's package) scraping the three services; None if not installed."""
    binary = prometheus_binary()
    if binary is None:
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
    record_service(profile, proc)
    try:
        proc.wait_ready(30, path="/-/ready")
    except ServiceNotReady as exc:
        log.warning("%s", exc)
        proc.stop(5)  # not left running unrecorded, nor recorded and failing the next `up`'s check
        forget_services(profile, "prometheus")
        return None
    return proc.url


def down(profile: stack.Profile) -> int:
    with profile_lock(profile):
        left = stop_recorded(recorded_pids(profile), STOP_TIMEOUT_S)
        state = profile.load()
        if left:
            log.error("still running after SIGKILL: %s", left)
            state["services"] = {n: s for n, s in state.get("services", {}).items() if n in left}
        else:
            state.pop("services", None)
        profile.save(state)
        profile.urls_file.unlink(missing_ok=True)
        stack.stop(profile)
    return 1 if left else 0


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
    # kafka-python says so of every SCRAM login, whose password never crosses the wire
    logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
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
