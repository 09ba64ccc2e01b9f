"""The read API's components (services/api/components.py) on ``app.state.components``: typed
attributes, and the same parts by name for code that reads them so (shared/http/base.py's
``current_principal``, the web pages)."""

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.components import ApiComponents
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET


@pytest.fixture
def components():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    reader = InMemoryTotalsReader({})
    with TestClient(create_app(settings, reader=reader, tree=load_vietnam(["38"]))) as client:
        c = client.app.state.components
        assert isinstance(c, ApiComponents) and c.reader is reader
        yield c


def test_an_app_built_by_a_test_connects_to_nothing(components):
    assert components.mongo is None and components.registry is None and components.cache is None


async def test_a_test_app_is_ready_without_a_database(components):
    assert await components.ready() == {"mongodb": True}


def test_a_part_read_by_name_is_the_attribute_and_written_by_name_replaces_it(components):
    assert components["auth"] is components.auth and components.get("mongo") is None
    assert "tree" in components and "nothing" not in components
    other = InMemoryTotalsReader({})
    components["reader"] = other
    assert components.reader is other


def test_names_the_api_does_not_define_are_kept_apart_and_unknown_ones_are_missing(components):
    assert components.setdefault("web_streams", {}) == {}
    components["web_streams"]["k"] = 1
    assert components["web_streams"] == {"k": 1} and components.extras == {"web_streams": {"k": 1}}
    with pytest.raises(KeyError):
        components["nothing"]
    assert components.get("nothing", 5) == 5
    components["extras"] = "x"  # the field holding them is not a name to overwrite
    assert components.extras["extras"] == "x"
