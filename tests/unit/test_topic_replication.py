"""Every topic the project creates takes its copies from the replication settings."""

from __future__ import annotations

import pytest

from services.aggregate.app import faust_app
from services.aggregate.settings import AggregateSettings
from services.aggregate.state import state_topic
from shared.domain.approvals import approvals_topic
from tools.topics import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, Replication, topic_specs

NAMES = {"BAOCAO_REPORTS_TOPIC": "r", "BAOCAO_DEAD_LETTER_TOPIC": "d", "BAOCAO_TOTALS_TOPIC": "t"}


def test_one_broker_by_default():
    assert Replication.from_env({}) == Replication(1, 1)
    for spec in topic_specs(4, NAMES, Replication.from_env({})):
        assert spec.replication_factor == 1
        assert spec.topic_configs["min.insync.replicas"] == "1"


def test_a_cluster_has_three_copies_and_two_in_sync_on_every_topic():
    env = {**NAMES, REPLICATION_FACTOR: "3", MIN_INSYNC_REPLICAS: "2"}
    specs = topic_specs(8, env)
    assert {s.name for s in specs} == {"r", "d", "t", state_topic("r"), approvals_topic("t")}
    for spec in specs:
        assert spec.replication_factor == 3, spec.name
        assert spec.topic_configs["min.insync.replicas"] == "2", spec.name
    # what each topic is for is kept beside the replication settings
    by_name = {s.name: s for s in specs}
    assert by_name["r"].topic_configs["retention.ms"] == "-1"
    assert by_name["r"].topic_configs["message.timestamp.type"] == "LogAppendTime"
    assert by_name["t"].topic_configs["cleanup.policy"] == "compact"
    assert by_name[state_topic("r")].topic_configs["cleanup.policy"] == "compact"
    assert by_name[approvals_topic("t")].topic_configs["cleanup.policy"] == "compact"


def test_min_insync_defaults_to_two_with_several_copies():
    assert Replication.from_env({REPLICATION_FACTOR: "3"}) == Replication(3, 2)
    assert Replication.from_env({REPLICATION_FACTOR: "2"}) == Replication(2, 2)
    assert Replication.from_env({REPLICATION_FACTOR: "5", MIN_INSYNC_REPLICAS: "3"}) == Replication(5, 3)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({REPLICATION_FACTOR: "0"}, REPLICATION_FACTOR),
        ({REPLICATION_FACTOR: "three"}, REPLICATION_FACTOR),
        ({REPLICATION_FACTOR: "3", MIN_INSYNC_REPLICAS: "4"}, MIN_INSYNC_REPLICAS),
        ({REPLICATION_FACTOR: "1", MIN_INSYNC_REPLICAS: "0"}, MIN_INSYNC_REPLICAS),
    ],
)
def test_impossible_replication_is_refused_naming_the_variable(env, names):
    with pytest.raises(ValueError, match=names):
        Replication.from_env(env)


def test_replication_round_trips_through_its_env():
    r = Replication(3, 2)
    assert Replication.from_env(r.env()) == r


def test_the_faust_worker_declares_topics_with_the_same_replication(monkeypatch, tmp_path):
    settings = AggregateSettings(
        kafka_bootstrap_servers="127.0.0.1:9092",
        mongodb_uri="mongodb://127.0.0.1:1/",
        auth_secret="s" * 40,
        data_dir=str(tmp_path),
        kafka_replication_factor=3,
    )
    assert faust_app(settings).conf.topic_replication_factor == 3
