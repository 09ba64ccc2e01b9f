"""End-to-end fixtures: the three services as real processes on the test's own topics and database,
and Debian's headless chromium for the page tests (one per module)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import browser_profile, remove_profile, start_chromium
from .system import start_system


@pytest.fixture
def system(namespace):
    system = start_system(namespace)
    yield system
    system.stop()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the page tests' screenshots go: BAOCAO_SCREENSHOT_DIR when set (docs/screenshots)."""
    where = os.environ.get("BAOCAO_SCREENSHOT_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    profile = browser_profile()
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
        remove_profile(profile)
