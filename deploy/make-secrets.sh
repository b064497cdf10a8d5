#!/bin/sh
# Make the secrets docker-compose.yml reads (deploy/secrets/*) and the development TLS
# certificates of the NATS cluster (deploy/nats/certs/*).  Existing files are kept, so running it
# again never rotates anything by accident (see docs/OPERATIONS.md, "Rotate secrets").
# Needs python3 with the `cryptography` package (the gridwork venv has it).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p deploy/secrets
umask 077
for name in jwt_secret postgres_password grafana_admin_password \
            nats_admin_password nats_visits_password nats_issues_password \
            nats_scoring_password nats_notify_password \
            postgres_visits_password postgres_issues_password postgres_scoring_password \
            postgres_notify_password; do
    file="deploy/secrets/$name"
    if [ ! -s "$file" ]; then
        "$PY" -c 'import secrets; print(secrets.token_hex(32))' > "$file"
        echo "made $file"
    fi
done
# notify seals channel secrets with AES-256: a base64 32-byte key
if [ ! -s deploy/secrets/notify_secret_key ]; then
    "$PY" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())' \
        > deploy/secrets/notify_secret_key
    echo "made deploy/secrets/notify_secret_key"
fi
if [ ! -s deploy/nats/certs/server.pem ]; then
    "$PY" -m shared.nats.users certs deploy/nats/certs
    chmod 0644 deploy/nats/certs/*.pem
fi
# Containers run as their own users and compose bind-mounts secret files as they are, so the files
# are readable; the folders are not, which keeps other users of this host out.
chmod 0644 deploy/secrets/*
chmod 0700 deploy/secrets deploy/nats/certs
echo "secrets in deploy/secrets, certificates in deploy/nats/certs (both git-ignored)"
