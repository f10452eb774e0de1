#!/usr/bin/env bash
# Install every Debian package dcworker needs to build, test and run its demo.
# Idempotent: it installs only the packages that are missing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config
	libhiredis-dev libcurl4-openssl-dev libjansson-dev libpq-dev libev-dev
	libcriterion-dev libc-ares-dev libpsl-dev libmicrohttpd-dev libssl-dev
	libinih-dev libidn2-dev
	redis-server redis-tools postgresql-15 dnsmasq-base openssl
	bind9-dnsutils curl procps jq
	python3-redis ruby-redis nodejs node-redis
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
