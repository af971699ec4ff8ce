#!/usr/bin/env bash
# Install the Debian packages bongsu needs, only those missing; silent when
# everything is present. `deps.sh` covers building and running; `deps.sh
# --test` adds what the test suites need (pytest, requests, and the
# reference systems the end-to-end tests compare against).
set -eu
BUILD_PKGS="gcc make pkg-config libcurl4-openssl-dev libmicrohttpd-dev libyaml-dev libpcre2-dev
  libxxhash-dev libzstd-dev zlib1g-dev libsnappy-dev libprotobuf-c-dev protobuf-c-compiler
  libfreeipmi-dev libipmimonitoring-dev"
TEST_PKGS="libcmocka-dev python3 python3-pytest python3-requests curl prometheus
  prometheus-node-exporter openipmi ipmitool freeipmi-tools prometheus-pushgateway
  prometheus-alertmanager influxdb python3-prometheus-client python3-influxdb openssl"
want=$BUILD_PKGS
[ "${1:-}" = "--test" ] && want="$want $TEST_PKGS"

missing=()
for p in $want; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# The prometheus packages start their services on install where an init
# system runs; we only want the binaries, and ports belong to the tests.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
