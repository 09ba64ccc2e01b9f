"""TLS to the brokers: every client gets one SSL context from the CA setting, and the local
stack's CA and broker keystore are owner-only."""

from __future__ import annotations

import shutil
import ssl
import stat
import subprocess

import pytest

from deploy import stack
from deploy.tls import make_broker_tls
from services.aggregate.app import _faust_credentials
from shared.adapters.kafka_credentials import (
    CREDENTIALS_DIR,
    PROTOCOL,
    SSL_CAFILE,
    CredentialsError,
    KafkaCredentials,
    principal_credentials,
    principal_env,
)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    return make_broker_tls(tmp_path_factory.mktemp("tls") / "tls", "unit")


def test_sasl_ssl_gives_every_client_a_context_checking_the_ca_and_the_host_name(tls_files):
    creds = KafkaCredentials("ingest", "pw", protocol="SASL_SSL", cafile=str(tls_files.ca))
    options = creds.options()
    assert options["security_protocol"] == "SASL_SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    # TLS 1.2: uvloop waits 30 s at each close for a TLS 1.3 broker's close_notify
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "baocao"),), (("commonName", "baocao local CA (unit)"),))
    ]


def test_plaintext_has_no_context():
    assert "ssl_context" not in KafkaCredentials("ingest", "pw").options()


def test_a_missing_ca_file_is_named_with_its_variable(tmp_path):
    creds = KafkaCredentials("ingest", "pw", protocol="SASL_SSL", cafile=str(tmp_path / "nope.pem"))
    with pytest.raises(CredentialsError, match=f"{SSL_CAFILE} names {tmp_path / 'nope.pem'}"):
        creds.options()


def test_a_file_that_is_no_ca_is_refused(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(CredentialsError, match=SSL_CAFILE):
        KafkaCredentials("ingest", "pw", protocol="SASL_SSL", cafile=str(junk)).ssl_context()


def test_a_ca_without_tls_is_a_contradiction():
    with pytest.raises(CredentialsError, match=PROTOCOL):
        KafkaCredentials.from_env({"BAOCAO_KAFKA_USERNAME": "u", "BAOCAO_KAFKA_PASSWORD": "p", SSL_CAFILE: "/ca.pem"})


def test_a_principal_file_takes_the_protocol_and_ca_of_the_environment(tmp_path, tls_files):
    (tmp_path / "unit.env").write_text("BAOCAO_KAFKA_USERNAME=unit\nBAOCAO_KAFKA_PASSWORD=pw\n")
    env = {CREDENTIALS_DIR: str(tmp_path), PROTOCOL: "SASL_SSL", SSL_CAFILE: str(tls_files.ca)}
    creds = principal_credentials(env, "unit")
    assert creds is not None and creds.protocol == "SASL_SSL" and creds.cafile == str(tls_files.ca)
    child = principal_env(env, "unit")
    assert child[SSL_CAFILE] == str(tls_files.ca) and CREDENTIALS_DIR not in child


def test_the_faust_worker_uses_sasl_ssl_with_the_context(tls_files):
    faust_creds = _faust_credentials(KafkaCredentials("aggregate", "pw", protocol="SASL_SSL", cafile=str(tls_files.ca)))
    assert faust_creds is not None and faust_creds.protocol.value == "SASL_SSL"
    assert isinstance(faust_creds.ssl_context, ssl.SSLContext)
    plain = _faust_credentials(KafkaCredentials("aggregate", "pw"))
    assert plain is not None and plain.protocol.value == "SASL_PLAINTEXT"


def test_the_local_ca_and_keystore_are_owner_only_and_name_loopback(tls_files):
    folder = tls_files.ca.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["broker.p12", "broker.p12.pass", "ca.pem"]  # no CA key
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    cert = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(tls_files.keystore),
            "-nokeys",
            "-clcerts",
            "-passin",
            f"file:{tls_files.keystore_password_file}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"], input=cert, capture_output=True, text=True, check=True
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tls_files.ca)], input=cert, capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    before = tls_files.ca.read_bytes()
    assert make_broker_tls(folder, "unit") == tls_files
    assert tls_files.ca.read_bytes() == before  # made once: clients keep trusting the brokers


def test_broker_properties_put_every_listener_on_tls_with_the_replication(tls_files, tmp_path):
    from tools.topics import Replication

    text = stack._kafka_properties(
        tmp_path,
        1,
        2,
        "pw",
        node_id=2,
        voters="1@127.0.0.1:2,2@127.0.0.1:4",
        tls=tls_files,
        replication=Replication(3, 2),
    )
    props = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["ssl.truststore.location"] == str(tls_files.ca)
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert props["node.id"] == "2"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "3", key
    for key in ("transaction.state.log.min.isr", "min.insync.replicas"):
        assert props[key] == "2", key


def test_profiles_layout(monkeypatch, tmp_path):
    monkeypatch.setattr(stack, "RUN", tmp_path)
    assert stack.kafka_layout(stack.Profile("cluster"), {}) == (3, True)
    assert stack.kafka_layout(stack.Profile("test-1-cluster"), {}) == (3, True)
    assert stack.kafka_layout(stack.Profile("dev"), {}) == (1, True)
    assert stack.kafka_layout(stack.Profile("dev"), {"BAOCAO_KAFKA_TLS": "0"}) == (1, False)
    assert stack.kafka_replication(1).env() == {
        "BAOCAO_KAFKA_REPLICATION_FACTOR": "1",
        "BAOCAO_KAFKA_MIN_INSYNC_REPLICAS": "1",
    }
    assert stack.kafka_replication(3).env() == {
        "BAOCAO_KAFKA_REPLICATION_FACTOR": "3",
        "BAOCAO_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }


def test_a_profile_recorded_before_clusters_is_one_node(monkeypatch, tmp_path):
    monkeypatch.setattr(stack, "RUN", tmp_path)
    profile = stack.Profile("old")
    profile.save({"kafka": {"pid": 0, "port": 9092, "controller_port": 9093}})
    state = profile.load()
    nodes = stack.kafka_nodes(state)
    assert nodes == {1: {"pid": 0, "port": 9092, "controller_port": 9093}}
    assert stack.kafka_bootstrap(state) == "127.0.0.1:9092"
    state["kafka"]["nodes"] = {"1": nodes[1]}  # what start_kafka records: still plain JSON
    profile.save(state)
    assert stack.kafka_nodes(profile.load()) == nodes
