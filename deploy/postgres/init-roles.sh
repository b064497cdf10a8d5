#!/bin/sh
# The PostgreSQL roles of the compose deployment: one per service, each owning the schema named
# after its service (see docs/OPERATIONS.md, "PostgreSQL roles").  Mounted into the postgres
# container's /docker-entrypoint-initdb.d, so it runs when the container makes its data volume;
# idempotent, so on a volume made before it existed run it by hand once:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-gridwork-roles.sh
# Passwords come from the compose secrets deploy/make-secrets.sh made (postgres_<service>_password).
# The admin (POSTGRES_USER, a superuser) keeps migrating and replaying for each service by acting
# as its role (`gridwork migrate`, `gridwork replay`), so everything stays owned by the service.
set -eu
db=${POSTGRES_DB:-gridwork}
admin=${POSTGRES_USER:-gridwork}
prefix=${GRIDWORK_ROLE_PREFIX:-gridwork}   # tests make their own
for service in visits issues scoring notify console; do
    password=$(cat "${GRIDWORK_SECRETS_DIR:-/run/secrets}/postgres_${service}_password")
    psql -v ON_ERROR_STOP=1 -q --username "$admin" --dbname "$db" \
         -v role="${prefix}_${service}" -v schema="$service" -v password="$password" -v db="$db" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN PASSWORD :'password';
GRANT CONNECT, CREATE ON DATABASE :"db" TO :"role";
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"role";
ALTER SCHEMA :"schema" OWNER TO :"role";
ALTER ROLE :"role" IN DATABASE :"db" SET search_path TO :"schema";
SQL
    echo "gridwork: role ${prefix}_${service} owns schema ${service}"
done
