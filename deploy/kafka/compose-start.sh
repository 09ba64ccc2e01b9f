#!/bin/bash
# A Kafka container of docker-compose.yml: KRaft node BAOCAO_KAFKA_NODE_ID (1, 2 or 3) of three,
# each broker and controller, reached as kafka-<id>. Every listener is SASL over TLS: clients and
# the other brokers log in with SCRAM-SHA-512 on :9092 and are authorized by ACL (tools/topics.py
# grants them), the controllers with PLAIN on :9093. TLS material comes from compose secrets
# (deploy/compose-secrets.sh makes it): /run/secrets/kafka-broker.pem (this broker's PKCS#8 key and
# certificate chain, for the name kafka-<id>) and /run/secrets/kafka-ca.pem (the CA every client and
# broker checks the others' certificates against). The SCRAM credentials of the principals are
# created when the data volume is formatted (first start); the passwords come from the environment
# (BAOCAO_KAFKA_<PRINCIPAL>_PASSWORD), never from this repository. Changing a password later takes
# `kafka-configs.sh --alter --entity-type users ...` as admin, then the new value in the environment.
set -euo pipefail

for name in ADMIN INGEST AGGREGATE READER UNIT; do
  var="BAOCAO_KAFKA_${name}_PASSWORD"
  if [ -z "${!var:-}" ]; then
    echo "kafka: $var is not set (no default: see docker-compose.yml)" >&2
    exit 2
  fi
done
id="${BAOCAO_KAFKA_NODE_ID:?set BAOCAO_KAFKA_NODE_ID (1, 2 or 3)}"
case "$id" in 1 | 2 | 3) ;; *) echo "kafka: BAOCAO_KAFKA_NODE_ID must be 1, 2 or 3, not $id" >&2; exit 2 ;; esac
keystore=/run/secrets/kafka-broker.pem
truststore=/run/secrets/kafka-ca.pem
for f in "$keystore" "$truststore"; do
  [ -r "$f" ] || { echo "kafka: $f is missing or unreadable (run deploy/compose-secrets.sh)" >&2; exit 2; }
done

config=/tmp/baocao-server.properties
admin_client=/tmp/baocao-admin-client.properties
umask 077
cat > "$config" <<PROPS
process.roles=broker,controller
node.id=${id}
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
listeners=SASL_SSL://:9092,CONTROLLER://:9093
advertised.listeners=SASL_SSL://kafka-${id}:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=${keystore}
ssl.truststore.type=PEM
ssl.truststore.location=${truststore}
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${BAOCAO_KAFKA_ADMIN_PASSWORD}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${BAOCAO_KAFKA_ADMIN_PASSWORD}" user_admin="${BAOCAO_KAFKA_ADMIN_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=/var/lib/kafka/data
num.partitions=8
# Three copies of everything, acks=all writes on two: one broker may be down and writes go on.
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=3000
auto.create.topics.enable=false
PROPS

# for the healthcheck (kafka-topics.sh --command-config); the name dialled is this broker's, the
# one its certificate is for
cat > "$admin_client" <<PROPS
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=${truststore}
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${BAOCAO_KAFKA_ADMIN_PASSWORD}";
PROPS

if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format -t "${CLUSTER_ID}" -c "$config" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${BAOCAO_KAFKA_ADMIN_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=ingest,password=${BAOCAO_KAFKA_INGEST_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=aggregate,password=${BAOCAO_KAFKA_AGGREGATE_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=reader,password=${BAOCAO_KAFKA_READER_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=unit,password=${BAOCAO_KAFKA_UNIT_PASSWORD}]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
