"""The README's five-minute walk, against running services: the tokens minted with the CLI as the
README mints them, the district's stream opened at the README's address, the shipped report file
submitted with `baocao submit`, then the README's figures read back from the API.

The commands' arguments and addresses are read from the README itself, so a walk whose text
stops working fails here. (`make run` also loads the demo data; here only what the walk needs is
loaded: Bá Thước's agencies and seed 000's conference reports.)
"""

import json
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from shared.domain.hierarchy import load_vietnam
from tests.conftest import wait_until
from tools import demo

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "report-conference.json"


def walk_text() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme[readme.index("## A five-minute walk") : readme.index("## What it looks like")]


def mint_arguments(walk: str) -> dict[str, list[str]]:
    """``CLERK=$(.venv/bin/baocao token mint ...)``: the arguments, per variable."""
    found = re.findall(r"^(\w+)=\$\(\.venv/bin/baocao (token mint [^)]*)\)$", walk, re.MULTILINE)
    return {name: shlex.split(args) for name, args in found}


def api_paths(walk: str) -> list[str]:
    """The API addresses the walk's curl commands read, without the base URL."""
    return re.findall(r'"\$BAOCAO_API_URL(/v1/[^"]+)"', walk)


def test_the_walk_reads_what_the_readme_says():
    walk = walk_text()
    assert set(mint_arguments(walk)) == {"CLERK", "OFFICE"}
    assert api_paths(walk) == ["/v1/units/386/stream?tree=legacy", "/v1/units/386/totals?period=2020-12"]
    assert "examples/report-conference.json" in walk
    assert json.loads(EXAMPLE.read_text(encoding="utf-8"))["unit"] == "386-cq01"


def test_the_readme_walk_runs(system):
    walk = walk_text()
    env = {**system.namespace.env, "PATH": "", "BAOCAO_INGEST_URL": system.ingest.url}
    cli = [sys.executable, "-m", "tools.cli"]

    def baocao(*args: str, token: str | None = None) -> str:
        done = subprocess.run(
            [*cli, *args],
            env={**env, **({"BAOCAO_TOKEN": token} if token else {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # What `make run` loads first: the district's agencies, and its communes' and its own reports.
    with system.client(system.api.url) as http:
        for agency in demo.agencies():
            r = http.post("/v1/admin/agencies", params={"tree": "legacy"}, json=agency)
            assert r.status_code in (200, 201), r.text
    with system.client(system.ingest.url) as http:
        r = http.post("/v1/reports/batch", json=demo.seed_000_study_sessions(load_vietnam()))
        assert r.json()["accepted"] == 22, r.text
    system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962)

    # 1. The two tokens, minted with the README's arguments.
    tokens = {name: baocao(*args) for name, args in mint_arguments(walk).items()}
    clerk, office = tokens["CLERK"], tokens["OFFICE"]
    stream_path, totals_path = api_paths(walk)

    # 2. The district's stream, open before the report goes in.
    events: list[str] = []

    def listen() -> None:
        headers = {"Authorization": f"Bearer {office}"}
        with httpx.Client(base_url=system.api.url, headers=headers, timeout=60) as http:
            with http.stream("GET", stream_path) as r:
                assert r.status_code == 200
                wanted = {'"id": "386|study_session|2020"', '"unit": "386-cq01"'}
                for line in r.iter_lines():  # the two documents come in either order
                    if line.startswith("data: "):
                        events.append(line[6:])
                        wanted = {w for w in wanted if w not in line}
                    if not wanted:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_until(
        lambda: "baocao_api_sse_clients 1.0" in httpx.get(system.api.url + "/metrics").text,
        timeout=30,
        what="the walk's stream to open",
    )

    # 3. The shipped file, submitted as the clerk; sent again, it is a duplicate.
    assert json.loads(baocao("submit", str(EXAMPLE), token=clerk)) == {"accepted": 1}
    assert json.loads(baocao("submit", str(EXAMPLE), token=clerk)) == {"duplicate": 1}
    wait_until(lambda: not listener.is_alive(), timeout=60, what="the district's document on the stream")
    district_event = next(json.loads(e) for e in events if '"id": "386|study_session|2020"' in e)
    assert district_event["periods"]["2020-12"]["sums"]["members_attended"] == 6000
    assert any(json.loads(e)["unit"] == "386-cq01" for e in events)

    # 4. The README's figures, from the API, with the office's token; the clerk sees only its unit.
    with system.client(system.api.url, office) as http:
        wait_until(
            lambda: http.get(totals_path).json()["metrics"]["study_session.members_attended"] == 6000,
            timeout=60,
            what="the district's totals",
        )
        totals = http.get(totals_path).json()
    assert totals["metrics"]["study_session.members_total"] == 6640
    assert totals["metrics"]["study_session.participation_rate"] == 0.9036
    done = totals["completeness"]["study_session"]
    assert (done["units_expected"], done["units_reported"]) == (43, 22)
    for figure in ("6000", "6640", "0.9036", '"units_expected": 43, "units_reported": 22'):
        assert figure in walk
    with system.client(system.api.url, clerk) as http:
        assert http.get(totals_path).status_code == 403
        own = http.get("/v1/units/386-cq01/totals", params={"period": "2020-12"}).json()
    assert own["metrics"]["study_session.members_attended"] == 38
