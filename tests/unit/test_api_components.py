"""The read API's components (services/api/components.py): opened by the app's lifespan on
``app.state.components``, reached by the routes through services/api/deps.py."""

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.components import ApiComponents
from services.api.deps import components_of
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

SETTINGS = ApiSettings(kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET)


def test_an_app_built_by_a_test_holds_what_it_was_given_and_connects_to_nothing():
    reader, tree = InMemoryTotalsReader({}), load_vietnam(["38"])
    with TestClient(create_app(SETTINGS, reader=reader, tree=tree)) as client:
        components = components_of(client.app)
        assert isinstance(components, ApiComponents)
        assert components.reader is reader and components.tree is tree and components.reads.reader is reader
        assert components.mongo is None and components.registry is None and components.cache is None
        assert client.get("/readyz").json() == {"status": "ready", "mongodb": True}


def test_before_the_lifespan_has_started_there_are_no_components_to_reach():
    app = create_app(SETTINGS, reader=InMemoryTotalsReader({}), tree=load_vietnam(["38"]))
    with pytest.raises(RuntimeError, match="opened by the app's lifespan"):
        components_of(app)
