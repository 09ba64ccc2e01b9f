"""The benchmark harness end to end, at smoke sizes.

`python -m bench --smoke` runs against the test servers (the namespace's KAFKA_BOOTSTRAP_SERVERS
and MONGODB_URI, so it starts none of its own), with topics and databases of its own. It must
exit 0 and write a JSON file in which every figure was measured. Nothing here asserts a time:
the figures belong to the machine, not to the test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.figures import FIGURE_KEYS
from deploy.stack import ROOT

pytestmark = pytest.mark.e2e


def results_path(stdout: str) -> Path:
    """The JSON file the benchmark names on its last line: ``results: <path>``."""
    named = [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("results: ")]
    assert len(named) == 1, f"expected one 'results:' line in:\n{stdout}"
    return Path(named[0])


@pytest.mark.timeout(600)
def test_smoke_run_measures_every_figure(namespace, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, **namespace.env},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, f"bench exited {run.returncode}:\n{run.stdout}\n{run.stderr[-6000:]}"

    path = results_path(run.stdout)
    assert path.parent == tmp_path
    results = json.loads(path.read_text())
    assert results["mode"] == "smoke"
    assert results["details"]["servers"]["started_here"] is False
    assert results["details"]["errors"] == []
    assert set(results["figures"]) == set(FIGURE_KEYS)
    for key in FIGURE_KEYS:
        value = results["figures"][key]["value"]
        assert isinstance(value, int | float) and value > 0, f"{key}: {value!r}"
    for name in ("python", "kafka", "pymongo", "faust-streaming"):
        assert results["versions"][name], name
    for key in FIGURE_KEYS:  # the printed table shows every figure too
        assert results["figures"][key]["title"] in run.stdout, key
