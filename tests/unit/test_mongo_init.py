"""deploy/mongodb/init-replica-set.js (docker-compose.yml's mongo-init, the chart's sidecar), run by
node against a fake member that keeps MongoDB's rules for an unauthenticated connection
(tests/unit/mongo_init_harness.js): a fresh set is initiated and gets its users through the
localhost exception; a second run only logs in and sets the passwords again; a wrong root password
or a missing one stops it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "mongodb" / "init-replica-set.js"
HARNESS = Path(__file__).with_name("mongo_init_harness.js")
ENV = {
    "MONGO_ROOT_PASSWORD": "root-pw",
    "BAOCAO_MONGO_PASSWORD": "app-pw",
    "BAOCAO_MONGO_BACKUP_PASSWORD": "backup-pw",
}


def run(state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing (Debian package nodejs): it runs the replica set's init script here")
    r = subprocess.run(
        [node, str(HARNESS), str(SCRIPT), json.dumps(state)], capture_output=True, text=True, timeout=60, check=False
    )
    return r.returncode, json.loads(r.stdout)


def test_a_fresh_set_is_initiated_and_gets_its_users():
    code, state = run({"env": ENV, "initiated": False})
    assert code == 0, state
    assert [m["host"] for m in state["config"]["members"]] == ["mongo-1:27017", "mongo-2:27017", "mongo-3:27017"]
    assert state["config"]["members"][0]["priority"] > state["config"]["members"][1]["priority"]
    assert {name: u["pwd"] for name, u in state["users"].items()} == {
        "root": "root-pw",
        "baocao": "app-pw",
        "backup": "backup-pw",
    }
    assert state["users"]["baocao"]["roles"] == [{"role": "readWrite", "db": "baocao"}]
    assert {u["w"] for u in state["users"].values()} == {"majority"}
    # the first user before any login, through the localhost exception; the others as root
    assert state["calls"].index("createUser") < state["calls"].index("createUser as root")


def test_a_second_run_logs_in_and_sets_the_passwords_again():
    _, first = run({"env": ENV, "initiated": False})
    code, state = run(
        {"env": {**ENV, "BAOCAO_MONGO_PASSWORD": "new-app-pw"}, "initiated": True, "users": first["users"]}
    )
    assert code == 0, state
    assert "replSetInitiate" not in state["calls"] and "createUser" not in state["calls"]
    assert state["users"]["baocao"]["pwd"] == "new-app-pw"
    assert "updateUser as root" in state["calls"]


def test_a_wrong_root_password_stops_it():
    _, first = run({"env": ENV, "initiated": False})
    code, state = run({"env": {**ENV, "MONGO_ROOT_PASSWORD": "guess"}, "initiated": True, "users": first["users"]})
    assert code != 0
    assert state["users"]["root"]["pwd"] == "root-pw"


@pytest.mark.parametrize("missing", sorted(ENV))
def test_it_refuses_to_run_without_a_password(missing):
    env = {k: v for k, v in ENV.items() if k != missing}
    code, state = run({"env": env, "initiated": False})
    assert code == 2 and not state.get("initiated")
    assert any(missing in c for c in state["calls"])


def test_on_another_member_it_does_nothing():
    code, state = run({"env": {**ENV, "MONGO_INIT_ON": "baocao-mongodb-0"}, "hostname": "baocao-mongodb-1"})
    assert code == 0 and not state.get("initiated") and state["users"] == {}
    code, state = run({"env": {**ENV, "MONGO_INIT_ON": "baocao-mongodb-0"}, "hostname": "baocao-mongodb-0"})
    assert code == 0 and state["initiated"]
