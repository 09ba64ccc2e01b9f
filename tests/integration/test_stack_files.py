"""The local servers' secrets and files (deploy/stack.py): Kafka's passwords never reach a process's
command line while its storage is formatted, the database server will not run without its users,
and a profile's data is readable by its owner only."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from deploy import stack
from tests.conftest import TEST_PROFILE

pytestmark = pytest.mark.integration

JAVA = os.environ.get("JAVA", "java")


def command_lines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
    return out


def test_formatting_kafka_storage_shows_no_password_in_the_process_table(tmp_path):
    lib = stack.CACHE / "kafka" / "lib"
    assert lib.is_dir(), "Kafka is not installed (make install)"
    kdir = tmp_path / "kafka"
    kdir.mkdir()
    passwords = {name: secrets.token_urlsafe(24) for name in ("admin", "ingest", "unit")}
    props = kdir / "server.properties"
    stack.write_private(
        props, stack._kafka_properties(kdir / "data", stack.free_port(), stack.free_port(), passwords["admin"])
    )
    result: list[subprocess.CompletedProcess[str]] = []
    worker = threading.Thread(
        target=lambda: result.append(
            stack.format_kafka_storage(
                [JAVA, "-Xmx256m", "-cp", f"{lib}/*"], kdir, "8JmZGDWiSkqBbclR4eWfAQ", props, passwords
            )
        )
    )
    seen_tool = False
    leaked = []
    worker.start()
    while worker.is_alive():
        for pid, line in command_lines().items():
            if str(kdir).encode() in line and pid != os.getpid():
                seen_tool = True
            leaked += [(pid, name) for name, p in passwords.items() if p.encode() in line]
    worker.join()
    assert result and result[0].returncode == 0, result and result[0].stderr
    assert seen_tool, "the storage tool was never seen running: the check looked at nothing"
    assert not leaked, f"passwords on a command line: {leaked}"
    assert (kdir / "data" / "meta.properties").exists()
    assert not (kdir / "format.args").exists(), "the argument file outlived the format"
    assert not [p for p in (kdir / "data").rglob("*") if p.stat().st_mode & 0o077], "group/other bits in the data"


def _server(tmp_path: Path, users: Path) -> subprocess.CompletedProcess[str]:
    lib = stack.CACHE / "mongo-java-server" / "lib"
    port = str(stack.free_port())
    return subprocess.run(
        [JAVA, "-cp", f"{lib}/*", "baocao.Server", "127.0.0.1", port, str(tmp_path / "x.mv"), str(users)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", ["missing", "empty", "group-readable", "too-few-iterations"])
def test_the_database_server_refuses_to_run_without_private_users(tmp_path, case):
    users = tmp_path / "users"
    line = stack.scram_sha256_user("baocao", "pw")
    if case != "missing":
        text = {"empty": "# nobody\n", "too-few-iterations": stack.scram_sha256_user("baocao", "pw", iterations=1000)}
        stack.write_private(users, text.get(case, line))
    if case == "group-readable":
        os.chmod(users, 0o640)
    done = _server(tmp_path, users)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "users file" in done.stderr
    assert not (tmp_path / "x.mv").exists()


def test_a_profiles_data_is_owner_only(infra):
    profile = stack.Profile(TEST_PROFILE)
    if not profile.state_file.exists():
        pytest.skip("the servers are external (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI): no local profile to look at")
    state = profile.load()
    for name in ("kafka", "mongodb"):
        umask = next(
            line.split()[1]
            for line in Path(f"/proc/{state[name]['pid']}/status").read_text().splitlines()
            if line.startswith("Umask:")
        )
        assert umask == "0077", (name, umask)
    expected = [
        profile.dir / "mongodb" / "baocao.mv",
        profile.dir / "mongodb" / "users",
        profile.dir / "mongodb" / "credentials.env",
        profile.dir / "kafka" / "data" / "bootstrap.checkpoint",
        profile.dir / "kafka" / "data" / "meta.properties",
        profile.state_file,
    ]
    assert all(p.exists() for p in expected), [p for p in expected if not p.exists()]
    assert stat.S_IMODE(profile.dir.stat().st_mode) == 0o700
    open_to_others = []
    for path in [profile.dir, *profile.dir.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if (stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700) or mode & 0o077:
            open_to_others.append((str(path), oct(stat.S_IMODE(mode))))
    assert not open_to_others
