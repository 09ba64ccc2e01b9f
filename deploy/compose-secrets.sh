#!/usr/bin/env bash
# Makes what docker-compose.yml refuses to start without, once, on the host that runs it:
#   .env                  the passwords and the secret key (base64url, owner-only), next to
#                         docker-compose.yml; compose reads it by itself
#   $DIR/mongo-keyfile    the replica set members' shared key (keyfile authentication)
#   $DIR/kafka-ca.pem     a private CA for the brokers' TLS listeners (its key stays in $DIR/ca/)
#   $DIR/kafka-N.pem      broker N's key (PKCS#8) and certificate for the names kafka-N and
#                         localhost, signed by that CA (Kafka's PEM keystore format)
#
#   bash deploy/compose-secrets.sh [DIR]     (DIR: default ./secrets, git-ignored)
#
# Nothing that exists is overwritten: a second run only reports. Use your own PKI instead by
# putting its CA bundle and broker keys at the same paths. Needs openssl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-secrets}"
umask 077
mkdir -p "$dir/ca"

token() { python3 -c 'import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))' "$1"; }

if [ ! -f .env ]; then
  {
    echo "BAOCAO_SECRETS_DIR=$(cd "$dir" && pwd)"
    echo "BAOCAO_AUTH_SECRET=$(token 48)"
    for p in ADMIN INGEST AGGREGATE READER UNIT; do echo "BAOCAO_KAFKA_${p}_PASSWORD=$(token 24)"; done
    echo "MONGO_ROOT_PASSWORD=$(token 24)"
    echo "BAOCAO_MONGO_PASSWORD=$(token 24)"
    echo "BAOCAO_MONGO_BACKUP_PASSWORD=$(token 24)"
  } > .env
  echo "compose-secrets: wrote .env"
else
  echo "compose-secrets: .env exists, left as it is"
fi

if [ ! -f "$dir/mongo-keyfile" ]; then
  # 6 to 1024 base64 characters (MongoDB's keyfile rules)
  openssl rand -base64 756 | tr -d '\n' > "$dir/mongo-keyfile"
  echo "compose-secrets: wrote $dir/mongo-keyfile"
fi

if [ ! -f "$dir/kafka-ca.pem" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 1825 -subj "/CN=baocao Kafka CA" \
    -keyout "$dir/ca/ca.key" -out "$dir/kafka-ca.pem" 2>/dev/null
  echo "compose-secrets: wrote $dir/kafka-ca.pem (key in $dir/ca/)"
fi

for n in 1 2 3; do
  out="$dir/kafka-$n.pem"
  [ -f "$out" ] && continue
  work="$(mktemp -d)"
  openssl req -newkey rsa:3072 -nodes -subj "/CN=kafka-$n" -keyout "$work/key.pem" -out "$work/req.csr" 2>/dev/null
  printf 'subjectAltName=DNS:kafka-%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$n" > "$work/ext"
  openssl x509 -req -in "$work/req.csr" -CA "$dir/kafka-ca.pem" -CAkey "$dir/ca/ca.key" \
    -CAserial "$dir/ca/ca.srl" -CAcreateserial \
    -days 825 -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null
  # Kafka's PEM keystore: the unencrypted PKCS#8 key, then the certificate chain
  openssl pkcs8 -topk8 -nocrypt -in "$work/key.pem" > "$out"
  cat "$work/cert.pem" "$dir/kafka-ca.pem" >> "$out"
  rm -rf "$work"
  echo "compose-secrets: wrote $out"
done
# Compose mounts each file as it is, so the containers' own users (Kafka's appuser, the baocao
# user) must be able to read it: the files are read-only for all, and the folder (0700, the
# operator's) is what keeps the host's other users out.
chmod 0444 "$dir/mongo-keyfile" "$dir/kafka-ca.pem" "$dir"/kafka-[123].pem
chmod 0700 "$dir" "$dir/ca"
