#!/usr/bin/env bash
# Installs what ShardVault needs to build on Debian: OpenSSL's libcrypto headers and pkg-config.
set -euo pipefail
missing=()
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi
command -v swift >/dev/null 2>&1 || { echo "Swift 6 is required (https://www.swift.org/install/linux/)" >&2; exit 69; }
