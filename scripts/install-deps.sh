#!/usr/bin/env bash
# Installs what secrun's build and tests need on a Debian machine, once.
# Needs root for apt-get; does nothing when everything is already there.
set -euo pipefail

need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v git >/dev/null 2>&1 || need+=(git)
# The installer tests have Debian's containerd read the configuration they
# write (`containerd config dump`); the package starts no daemon without
# systemd.
command -v containerd >/dev/null 2>&1 || need+=(containerd)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "install-deps: Go is missing; install Go 1.26 or newer (the module and its Kubernetes dependencies need it)" >&2
	exit 1
fi
go mod download
