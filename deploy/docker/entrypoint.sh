#!/bin/sh
# Entrypoint of the gridwork image.
#
# 1. Secrets from files: for every GRIDWORK_X_FILE and PGPASSWORD_FILE (compose secrets under
#    /run/secrets), export GRIDWORK_X / PGPASSWORD (asyncpg reads it) with the file's content, so no secret sits in the environment of the
#    compose file or in `docker inspect`.  GRIDWORK_KEK_FILE and GRIDWORK_KEK_RETIRED_FILE stay
#    files: the service reads them itself.
# 2. NATS credentials: GRIDWORK_NATS_USER and GRIDWORK_NATS_PASSWORD(_FILE) are put into every
#    server of GRIDWORK_NATS_URL (tls://user:password@n1:4222,...), the form nats-py reads.
# 3. The cluster's CA: GRIDWORK_NATS_TLS_CA is added to the trust bundle Python's ssl uses
#    (SSL_CERT_FILE), so tls:// connections verify the NATS servers.
set -eu

for var in $(env | sed -n 's/^\(GRIDWORK_[A-Z0-9_]*\|PGPASSWORD\)_FILE=.*/\1/p'); do
    case "$var" in
        # the key-encryption keys: the visits service reads their files itself, so they never sit
        # in a process environment (/proc/<pid>/environ)
        GRIDWORK_KEK | GRIDWORK_KEK_RETIRED) continue ;;
    esac
    file=$(printenv "${var}_FILE")
    if [ -r "$file" ]; then
        export "$var=$(cat "$file")"
    else
        echo "entrypoint: ${var}_FILE=$file is not readable" >&2
        exit 1
    fi
done

if [ -n "${GRIDWORK_NATS_USER:-}" ] && [ -n "${GRIDWORK_NATS_PASSWORD:-}" ] && [ -n "${GRIDWORK_NATS_URL:-}" ]; then
    # passwords are hex (gridwork cluster / deploy/make-secrets.sh), safe in a URL
    GRIDWORK_NATS_URL=$(printf '%s' "$GRIDWORK_NATS_URL" \
        | sed "s#://#://${GRIDWORK_NATS_USER}:${GRIDWORK_NATS_PASSWORD}@#g")
    export GRIDWORK_NATS_URL
fi

if [ -n "${GRIDWORK_NATS_TLS_CA:-}" ]; then
    bundle=/tmp/gridwork-ca-bundle.pem
    cat "$(python -c 'import certifi; print(certifi.where())' 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)" \
        "$GRIDWORK_NATS_TLS_CA" > "$bundle"
    export SSL_CERT_FILE="$bundle"
fi

exec "$@"
