"""Which ingest and API URLs the CLI talks to: --ingest-url/--api-url, then BAOCAO_INGEST_URL /
BAOCAO_API_URL, then the profile's .run/<profile>/urls.env (written by `make run`), then the
default ports."""

import pytest

from deploy import stack
from tools import cli

DEV = "BAOCAO_INGEST_URL=http://127.0.0.1:41001\nBAOCAO_API_URL=http://127.0.0.1:41002\n"


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "RUN", tmp_path)
    for name in ("BAOCAO_INGEST_URL", "BAOCAO_API_URL", "BAOCAO_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write(run_dir, profile, text):
    (run_dir / profile).mkdir(parents=True, exist_ok=True)
    (run_dir / profile / "urls.env").write_text("# written by make run\n" + text)


def test_without_urls_env_or_variables_the_default_ports(run_dir):
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, None, environ={}) == "http://127.0.0.1:8001"
    assert cli.resolve_url("BAOCAO_API_URL", None, None, environ={}) == "http://127.0.0.1:8002"


def test_the_dev_profiles_urls_env_comes_before_the_defaults(run_dir):
    write(run_dir, "dev", DEV)
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, None, environ={}) == "http://127.0.0.1:41001"
    assert cli.resolve_url("BAOCAO_API_URL", None, None, environ={}) == "http://127.0.0.1:41002"


def test_the_profile_comes_from_the_flag_then_baocao_profile(run_dir):
    write(run_dir, "dev", DEV)
    write(run_dir, "other", "BAOCAO_INGEST_URL=http://127.0.0.1:42001\n")
    write(run_dir, "third", "BAOCAO_INGEST_URL=http://127.0.0.1:43001\n")
    env = {"BAOCAO_PROFILE": "other"}
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, None, environ=env) == "http://127.0.0.1:42001"
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, "third", environ=env) == "http://127.0.0.1:43001"
    # a profile whose urls.env does not name the API: the default port, not another profile's
    assert cli.resolve_url("BAOCAO_API_URL", None, "other", environ={}) == "http://127.0.0.1:8002"


def test_environment_variables_come_before_urls_env_and_flags_before_both(run_dir):
    write(run_dir, "dev", DEV)
    env = {"BAOCAO_INGEST_URL": "http://ingest.example:1"}
    assert cli.resolve_url("BAOCAO_INGEST_URL", None, None, environ=env) == "http://ingest.example:1"
    assert cli.resolve_url("BAOCAO_API_URL", None, None, environ=env) == "http://127.0.0.1:41002"
    assert cli.resolve_url("BAOCAO_INGEST_URL", "http://flag:2", None, environ=env) == "http://flag:2"


def test_the_commands_get_the_resolved_urls(run_dir, monkeypatch):
    write(run_dir, "p", DEV)
    monkeypatch.setenv("BAOCAO_API_URL", "http://api.example:3")
    seen = {}
    monkeypatch.setattr(cli, "cmd_demo_load", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["demo", "load", "--token", "t", "--profile", "p"]) == 0
    assert (seen["ingest_url"], seen["api_url"]) == ("http://127.0.0.1:41001", "http://api.example:3")
    assert cli.main(["demo", "load", "--token", "t", "--ingest-url", "http://flag:4"]) == 0
    assert seen["ingest_url"] == "http://flag:4"
    assert seen["api_url"] == "http://api.example:3"
