#!/bin/sh
# Make the secrets docker-compose.yml reads (deploy/secrets/*) and the development TLS
# certificates of the NATS cluster (deploy/nats/certs/*).  Existing files are kept, so running it
# again never rotates anything by accident (see docs/OPERATIONS.md, "Rotate secrets").
# Needs python3 with the `cryptography` package (the gridwork venv has it).
#
# Every secret and private key is owner-only (0600) from its first byte: the umask is set before
# anything is written, and no file is ever made wider afterwards.  Docker Compose bind-mounts a
# file secret as it is on the host — it ignores a secret's uid, gid and mode unless the secret runs
# on Swarm — so the containers' users get their files by ownership instead: run as root (sudo),
# the script gives each secret to the user of the container reading it (the gridwork image's
# 10001, Grafana's 472; the NATS and PostgreSQL entrypoints read theirs as root).  Run again as
# root, it only fixes ownership.  GRIDWORK_SECRETS_UID / GRIDWORK_GRAFANA_UID change the owners
# (a rootless Docker maps container uids elsewhere: see docs/OPERATIONS.md).
set -eu
umask 077
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
GRIDWORK_UID=${GRIDWORK_SECRETS_UID:-10001}
GRAFANA_UID=${GRIDWORK_GRAFANA_UID:-472}
mkdir -p deploy/secrets deploy/nats/certs
chmod 0700 deploy/secrets deploy/nats/certs
for name in jwt_secret postgres_password grafana_admin_password \
            nats_admin_password nats_visits_password nats_issues_password \
            nats_scoring_password nats_notify_password nats_console_password \
            postgres_visits_password postgres_issues_password postgres_scoring_password \
            postgres_notify_password postgres_console_password; do
    file="deploy/secrets/$name"
    if [ ! -s "$file" ]; then
        "$PY" -c 'import secrets; print(secrets.token_hex(32))' > "$file"
        echo "made $file"
    fi
done
# AES-256 keys, base64 of 32 random bytes: notify's sealing key for channel secrets, the
# console's for password hashes in the stream, and the
# key-encryption key (KEK) that wraps residents' household keys (the visits service only)
for name in notify_secret_key console_secret_key kek; do
    file="deploy/secrets/$name"
    if [ ! -s "$file" ]; then
        "$PY" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())' > "$file"
        echo "made $file"
    fi
done
if [ ! -s deploy/nats/certs/server.pem ]; then
    "$PY" -m shared.nats.users certs deploy/nats/certs
    # the certificates are public; the server's private key stays 0600 (nats-server reads it as root)
    chmod 0644 deploy/nats/certs/ca.pem deploy/nats/certs/server.pem
fi
if [ "$(id -u)" = 0 ]; then
    for file in deploy/secrets/*; do
        case "$file" in
            */grafana_admin_password) chown "$GRAFANA_UID:$GRAFANA_UID" "$file" ;;
            *) chown "$GRIDWORK_UID:$GRIDWORK_UID" "$file" ;;
        esac
    done
    echo "secrets owned by uid $GRIDWORK_UID (gridwork) and $GRAFANA_UID (grafana), mode 0600"
else
    echo "not root: the secrets are 0600 and owned by $(id -un); the containers cannot read them until" >&2
    echo "  sudo deploy/make-secrets.sh   (gives each file to its container's user; nothing is rotated)" >&2
fi
echo "secrets in deploy/secrets, certificates in deploy/nats/certs (both git-ignored)"
