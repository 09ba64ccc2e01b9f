"""End-to-end fixtures: the three services as real processes on the test's own topics and database."""

import pytest

from .system import start_system


@pytest.fixture
def system(namespace):
    system = start_system(namespace)
    yield system
    system.stop()
