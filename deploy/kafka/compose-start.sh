#!/bin/bash
# The Kafka container of docker-compose.yml: one KRaft node (broker and controller) whose clients
# log in with SASL/SCRAM-SHA-512 and are authorized by ACL (tools/topics.py grants them), as
# deploy/stack.py configures the local one. The SCRAM credentials of the principals are created
# when the data volume is formatted (first start); the passwords come from the environment
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

config=/tmp/baocao-server.properties
admin_client=/tmp/baocao-admin-client.properties
umask 077
cat > "$config" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=SASL_PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=SASL_PLAINTEXT://kafka:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${BAOCAO_KAFKA_ADMIN_PASSWORD}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${BAOCAO_KAFKA_ADMIN_PASSWORD}" user_admin="${BAOCAO_KAFKA_ADMIN_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=/var/lib/kafka/data
num.partitions=8
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS

# for the healthcheck (kafka-topics.sh --command-config)
cat > "$admin_client" <<PROPS
security.protocol=SASL_PLAINTEXT
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
