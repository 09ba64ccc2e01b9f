"""tools/mongo_backup.py's choice of engine and the mongodump/mongorestore command lines it runs,
with stand-ins for MongoDB's Database Tools on the PATH (they cannot be installed here: neither
Debian nor the Go module proxy serves them). Its own PyMongo engine is exercised against the local
server in tests/integration/test_mongo_replica_settings.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shared.adapters.mongo import READ_PREFERENCES, make_client
from shared.settings import ServiceSettings
from tools import mongo_backup

URI = "mongodb://backup:s3cret-pw@mongo-1:27017,mongo-2:27017/?replicaSet=rs0&authSource=admin"


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mongodump and mongorestore that record their arguments and the config file they were given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    for tool in ("mongodump", "mongorestore"):
        script = bin_dir / tool
        script.write_text(
            "#!/usr/bin/env python3\n"
            "import json, sys\n"
            "cfg = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--config='))\n"
            f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv, 'config': open(cfg).read()}}) + '\\n')\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_auto_runs_mongodump_when_installed_with_the_uri_off_the_command_line(fake_tools, tmp_path):
    assert mongo_backup.main(["dump", "--uri", URI, "--db", "baocao", "--out", str(tmp_path / "b")]) == 0
    [call] = calls(fake_tools)
    assert Path(call["argv"][0]).name == "mongodump"
    assert call["argv"][2:] == ["--db=baocao", f"--out={tmp_path / 'b'}"]
    assert not any("s3cret" in a for a in call["argv"])
    assert json.loads(call["config"].removeprefix("uri: ")) == URI


def test_restore_of_a_dump_root_restores_its_one_database(fake_tools, tmp_path):
    (tmp_path / "b" / "baocao").mkdir(parents=True)
    (tmp_path / "b" / "baocao" / "agencies.bson").write_bytes(b"")
    assert mongo_backup.main(["restore", "--uri", URI, "--from", str(tmp_path / "b"), "--drop"]) == 0
    [call] = calls(fake_tools)
    assert call["argv"][2:] == ["--writeConcern=majority", "--drop", "--db=baocao", str(tmp_path / "b" / "baocao")]


def test_restore_refuses_a_folder_without_one_database(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.bson").write_bytes(b"")
    with pytest.raises(SystemExit, match="one database"):
        mongo_backup.dump_folder(tmp_path, "baocao")


def test_restore_of_a_database_folder_names_the_database(fake_tools, tmp_path):
    folder = tmp_path / "b" / "baocao"
    folder.mkdir(parents=True)
    (folder / "agencies.bson").write_bytes(b"")
    assert mongo_backup.main(["restore", "--uri", URI, "--db", "baocao_copy", "--from", str(folder)]) == 0
    [call] = calls(fake_tools)
    assert call["argv"][2:] == ["--writeConcern=majority", "--db=baocao_copy", str(folder)]


def test_the_python_engine_is_chosen_without_the_tools(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert mongo_backup.engine("auto", "mongodump") == "python"
    with pytest.raises(SystemExit, match="not on the PATH"):
        mongo_backup.engine("mongodump", "mongodump")


def test_a_uri_is_required(monkeypatch, capsys):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(SystemExit):
        mongo_backup.main(["dump", "--out", "x"])
    assert "MONGODB_URI" in capsys.readouterr().err


async def test_read_preference_is_a_setting_with_a_safe_default(monkeypatch):
    base = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "MONGODB_URI": "mongodb://m:27017/"}
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MONGODB_READ_PREFERENCE", raising=False)
    assert ServiceSettings().mongodb_read_preference == "primary"
    monkeypatch.setenv("MONGODB_READ_PREFERENCE", "secondaryPreferred")
    assert ServiceSettings().mongodb_read_preference == "secondaryPreferred"
    monkeypatch.setenv("MONGODB_READ_PREFERENCE", "anywhere")
    with pytest.raises(ValueError, match=r"MONGODB_READ_PREFERENCE|mongodb_read_preference"):
        ServiceSettings()
    for mode in READ_PREFERENCES:
        client = make_client("mongodb://m:27017/", "t", read_preference=mode)
        assert client.read_preference.mongos_mode == mode
        assert client.options.retry_writes and client.options.retry_reads
        await client.close()
    with pytest.raises(ValueError, match="read preference"):
        make_client("mongodb://m:27017/", "t", read_preference="anywhere")
