#!/bin/sh
# Start one node of the compose NATS cluster.  auth.conf refers to the users' passwords as
# $NATS_<USER>_PASSWORD; they come from compose secrets (files), never from the compose file.
set -eu
for user in admin visits issues scoring notify console; do
    var="NATS_$(echo "$user" | tr 'a-z' 'A-Z')_PASSWORD"
    export "$var=$(cat "/run/secrets/nats_${user}_password")"
done
exec nats-server --config /etc/nats/nats.conf
