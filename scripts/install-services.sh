#!/usr/bin/env bash
# Installs the real servers the test suite starts on 127.0.0.1 (Debian packages), when missing:
# nats-server (bus plugin), postgresql-15 (postgres sink), redis-server (redis sink),
# chromium + chromium-driver (dashboard browser tests).
# Needs root and apt-get; elsewhere it says what is missing and the tests that need it skip
# (under CI=true they fail instead).
set -uo pipefail

need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services: missing ${need[*]} (needs root and apt-get); tests that need them will skip" >&2
    exit 0
fi
echo "install-services: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
