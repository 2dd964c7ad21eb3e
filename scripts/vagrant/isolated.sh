#!/usr/bin/env bash
# The part of `make test-vagrant` that runs libvirt and Vagrant. run.sh
# starts it with `unshare --mount --net`, so everything here happens in a
# private mount namespace and a private network namespace that holds only
# a loopback interface:
#   - libvirtd gets its own /etc/libvirt (the host's, without any network
#     definition, so libvirt's "default" NAT network cannot start; and a
#     qemu.conf that keeps QEMU out of the host's cgroups and needs no
#     virtlogd), its own /run/libvirt, /var/lib/libvirt and /var/log/libvirt;
#   - /dev/kvm, where the host has it, is replaced in this namespace by a
#     node with Debian's usual owner and mode (root:kvm 0660), so that
#     libvirt does not re-probe QEMU for a minute on every domain define
#     when the host's node is root-only; the host's node is not touched;
#   - the guest's network is QEMU's user-mode network, its ssh forwarded
#     from 127.0.0.1 in this namespace (SECRUN_NET=loopback).
# When this script ends, its trap destroys the VM and stops libvirtd;
# run.sh checks that they are gone.
#
# Arguments: STATE_DIR OUT_DIR BIN_DIR BOX_FILE BOX_NAME DRIVER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../vm/lib.sh
. "$here/../vm/lib.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
state=$1 out=$2 bin=$3 box_file=$4 box_name=$5 driver=$6
repo=$(cd "$here/../.." && pwd)

# Vagrant redraws progress bars with carriage returns even into a file.
no_progress() { "$@" 2>&1 | sed -u 's/\r/\n/g' | grep --line-buffered -v -e '^.\[KProgress' -e '^Progress:' -e '^$'; return "${PIPESTATUS[0]}"; }

VAGRANT_STAGES=$state/stages
stage() { vagrant_stage "$@"; }

# ---- private mounts ----
mount --make-rprivate /
mkdir -p "$state"/{etc,lib,run,log,dot,kvm}
cp -a /etc/libvirt/. "$state/etc/"
rm -rf "$state/etc/qemu/networks" "$state/etc/storage" "$state/etc/qemu/autostart"
mkdir -p "$state/etc/qemu/networks/autostart"
cat >>"$state/etc/qemu.conf" <<'EOF'

# secrun test-vagrant: no cgroups of the host, no virtlogd.
cgroup_controllers = [ ]
stdio_handler = "file"
EOF
mount --bind "$state/etc" /etc/libvirt
mount --bind "$state/run" /run/libvirt 2>/dev/null || { mkdir -p /run/libvirt && mount --bind "$state/run" /run/libvirt; }
mkdir -p /var/lib/libvirt /var/log/libvirt /var/cache/libvirt "$VAGRANT_CACHE/libvirt-cache"
mount --bind "$state/lib" /var/lib/libvirt
# The storage pool is kept, so that vagrant-libvirt uploads the box's
# image (hundreds of MB) once per box, not on every run. Nothing but that
# base volume stays: a domain's own disk that a killed run left behind,
# and the volumes of older boxes, go.
mkdir -p "$VAGRANT_CACHE/pool" "$state/lib/images"
find "$VAGRANT_CACHE/pool" -mindepth 1 -maxdepth 1 ! -name "*${box_name##*-}*_vagrant_box_image_*" -exec rm -rf {} +
mount --bind "$VAGRANT_CACHE/pool" /var/lib/libvirt/images
mount --bind "$state/log" /var/log/libvirt
# QEMU's capabilities, probed once per QEMU binary and kept.
mount --bind "$VAGRANT_CACHE/libvirt-cache" /var/cache/libvirt
if [ -c /dev/kvm ]; then
	mknod -m 0660 "$state/kvm/kvm" c 10 232
	chgrp kvm "$state/kvm/kvm" 2>/dev/null || true
	mount --bind "$state/kvm/kvm" /dev/kvm
fi
ip link set lo up

# ---- libvirtd ----
libvirtd_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -f "$state/vagrant-up" ]; then
		stage destroy vagrant destroy -f || true
	fi
	if [ -n "$libvirtd_pid" ] && kill -0 "$libvirtd_pid" 2>/dev/null; then
		# Domains vagrant could not destroy go with libvirtd's state dirs,
		# but their QEMU would outlive it: stop them by their own pid.
		# A pid file can outlive its process: stop only a QEMU that
		# runs in this network namespace.
		for p in "$state"/run/qemu/*.pid; do
			[ -f "$p" ] || continue
			qp=$(cat "$p")
			case $(readlink "/proc/$qp/exe" 2>/dev/null) in */qemu-system-*) ;; *) continue ;; esac
			[ "$(readlink "/proc/$qp/ns/net")" = "$(readlink /proc/self/ns/net)" ] || continue
			kill "$qp" 2>/dev/null && vagrant_log "stopped leftover QEMU $qp"
		done
		kill "$libvirtd_pid"
		for _ in $(seq 50); do kill -0 "$libvirtd_pid" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$libvirtd_pid" 2>/dev/null || true
	fi
	cp -a "$state/log/qemu/." "$out/libvirt-log/" 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_libvirtd() {
	libvirtd --pid-file "$state/run/libvirtd.pid" >"$out/libvirtd.log" 2>&1 &
	libvirtd_pid=$!
	echo "$libvirtd_pid" >"$state/libvirtd.pid"
	for _ in $(seq 100); do
		virsh -q -c qemu:///system version >/dev/null 2>&1 && return 0
		kill -0 "$libvirtd_pid" 2>/dev/null || break
		sleep 0.2
	done
	tail -n 20 "$out/libvirtd.log" >&2
	vagrant_die "libvirtd did not start (log: $out/libvirtd.log)"
}
mkdir -p "$out/libvirt-log"
stage libvirtd start_libvirtd
if [ -n "$(virsh -q -c qemu:///system net-list --all --name)" ]; then
	vagrant_die "libvirt has a network defined in the private namespace: $(virsh -q -c qemu:///system net-list --all --name | tr '\n' ' ')"
fi

# ---- Vagrant ----
export VAGRANT_HOME=$VAGRANT_CACHE/home
export VAGRANT_DOTFILE_PATH=$state/dot
export VAGRANT_CHECKPOINT_DISABLE=1
export VAGRANT_DEFAULT_PROVIDER=libvirt
export SECRUN_BOX=$box_name SECRUN_NET=loopback SECRUN_BIN=$bin SECRUN_GO=none
export SECRUN_LIBVIRT_DRIVER=$driver SECRUN_CONSOLE_LOG=$out/console.log
export SECRUN_CPUS=${SECRUN_VAGRANT_CPUS:-2} SECRUN_MEM=${SECRUN_VAGRANT_MEM:-2048}
cd "$repo"

add_box() {
	if vagrant box list --machine-readable | grep -q ",box-name,$box_name\$"; then
		vagrant_log "box $box_name is added already"
		return 0
	fi
	# One added box per key: drop those of older keys.
	vagrant box list --machine-readable | awk -F, '$3 == "box-name" { print $4 }' | grep '^secrun-local/' | while read -r old; do
		vagrant box remove -f --all "$old" >/dev/null || true
	done
	no_progress vagrant box add --name "$box_name" --provider libvirt "$box_file"
}
stage box-add add_box

touch "$state/vagrant-up"
stage up no_progress vagrant up --provider=libvirt --no-provision
stage provision-tools vagrant provision --provision-with tools
suite_rc=0
stage conformance vagrant provision --provision-with conformance || suite_rc=$?
fetch_reports() {
	vagrant ssh -c 'sudo tar -C /secrun/_out/conformance -c .' -- -q | tar -x -C "$out"
}
stage fetch-reports fetch_reports
if [ "${SECRUN_VAGRANT_HOLD:-0}" = 1 ]; then
	# Debugging: keep the VM until the hold file goes away.
	: >"$state/hold"
	vagrant_log "holding the VM: enter its namespaces with"
	vagrant_log "  nsenter -t $libvirtd_pid -m -n env VAGRANT_HOME=$VAGRANT_HOME VAGRANT_DOTFILE_PATH=$VAGRANT_DOTFILE_PATH SECRUN_BOX=$box_name SECRUN_NET=loopback SECRUN_BIN=$bin SECRUN_LIBVIRT_DRIVER=$driver sh -c 'cd $repo && vagrant ssh'"
	vagrant_log "  rm $state/hold   # to go on (destroy the VM)"
	while [ -e "$state/hold" ]; do sleep 2; done
fi
exit "$suite_rc"
