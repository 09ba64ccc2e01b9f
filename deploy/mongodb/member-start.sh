#!/bin/bash
# A member of the MongoDB replica set (docker-compose.yml's mongo-1..3, the chart's StatefulSet):
# mongod with keyfile authentication, so members prove to each other that they belong to the set
# and every client must log in. mongod refuses a keyfile that others may read, and a mounted
# secret keeps the host's owner and mode, so it is copied here (as root) to a file only the
# mongodb user reads, then the image's entrypoint drops to that user.
#   MONGO_KEYFILE        the mounted keyfile (default /run/secrets/mongo-keyfile)
#   MONGO_REPLICA_SET    the set's name (default rs0)
set -euo pipefail
src="${MONGO_KEYFILE:-/run/secrets/mongo-keyfile}"
[ -s "$src" ] || { echo "mongo: keyfile $src is missing or empty (run deploy/compose-secrets.sh)" >&2; exit 2; }
mkdir -p /etc/mongo-auth
install -m 0400 -o mongodb -g mongodb "$src" /etc/mongo-auth/keyfile
exec docker-entrypoint.sh mongod --replSet "${MONGO_REPLICA_SET:-rs0}" --keyFile /etc/mongo-auth/keyfile \
  --bind_ip_all "$@"
