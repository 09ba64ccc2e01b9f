"""One Python version everywhere: the virtualenv deploy/install.sh makes (for development and CI)
and the Dockerfile's base image run the same minor version, and the checks (ruff's target, mypy's
python_version) hold the code to the oldest version pyproject.toml allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def install_minor(script: str) -> str:
    found: list[str] = re.findall(r"^PYTHON_MINOR=(\d+\.\d+)$", script, re.M)
    (minor,) = found
    return minor


def image_minor(dockerfile: str) -> str:
    found: list[str] = re.findall(r"^FROM python:(\d+\.\d+)\.\d+\S*$", dockerfile, re.M)
    (minor,) = found
    return minor


def test_the_virtualenv_and_the_image_run_the_same_python() -> None:
    minor = install_minor((ROOT / "deploy/install.sh").read_text())
    assert image_minor((ROOT / "Dockerfile").read_text()) == minor


def test_the_checks_hold_the_code_to_the_oldest_python_allowed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    oldest = re.fullmatch(r">=(\d+)\.(\d+)", project["project"]["requires-python"])
    assert oldest is not None
    major, minor = oldest.groups()
    assert project["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert project["tool"]["mypy"]["python_version"] == f"{major}.{minor}"
    wanted = install_minor((ROOT / "deploy/install.sh").read_text()).split(".")
    assert (int(major), int(minor)) <= (int(wanted[0]), int(wanted[1]))


def test_the_readers_find_the_versions_or_fail() -> None:
    assert install_minor("x=1\nPYTHON_MINOR=3.13\n") == "3.13"
    assert image_minor("# base\nFROM python:3.13.7-slim-bookworm\n") == "3.13"
    for unpinned in ("FROM python:3.13-slim\n", ""):
        with pytest.raises(ValueError):
            image_minor(unpinned)
