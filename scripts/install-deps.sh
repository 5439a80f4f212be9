#!/usr/bin/env bash
# Installs the Debian packages medic-edge needs to build, test and run its demo, when missing.
# Debian 12, as root (or with sudo). The Swift 6.3 toolchain itself must already be on PATH.
set -euo pipefail
pkgs=(mosquitto mosquitto-clients libmosquitto-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev pkg-config
      openssl faketime python3 python3-yaml python3-jsonschema chromium chromium-driver python3-selenium prometheus)
if [ "${1:-}" = "--runtime-only" ]; then
  pkgs=(mosquitto mosquitto-clients libmosquitto-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev pkg-config)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a system mosquitto on :1883 where systemd runs; tests and the demo
# start their own brokers on free loopback ports and need nothing from it. Likewise prometheus (a
# system one on :9090): the monitoring tests run their own on a free port.
command -v swift >/dev/null || { echo "install-deps: the Swift 6.3 toolchain is not on PATH (see README)"; exit 1; }
