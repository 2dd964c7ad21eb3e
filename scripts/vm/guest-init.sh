#!/bin/sh
# PID 1 of the conformance VM (runs from the payload disk, /payload; the
# initramfs hands over to it). Mounts what a container host needs (proc,
# sysfs, securityfs for AppArmor, a pure cgroup v2 hierarchy), runs
# guest-run.sh with the results directory on the payload disk, writes its
# exit status there, and powers the VM off. run.sh reads the results back
# from the payload disk image after QEMU exits.
set -u
# Run from the root disk, so that nothing holds the payload disk open when
# it is unmounted at the end.
if [ "$0" != /guest-init.sh ]; then
	cp "$0" /guest-init.sh && exec /guest-init.sh
fi
export PATH=/payload/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q " /dev devtmpfs " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
hostname secrun-vm
ip link set lo up 2>/dev/null

# The boot-time figure: kernel uptime when userspace starts. run.sh also
# times this line from QEMU's start.
echo "SECRUN-VM: userspace up, uptime $(cut -d' ' -f1 /proc/uptime) s"

R=/payload/results
rm -rf "$R"
mkdir -p "$R"
{
	echo "kernel=$(uname -r)"
	echo "lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)"
	echo "apparmor_enabled=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)"
	echo "cgroup_fs=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)"
	echo "cgroup_controllers=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
	echo "cpus=$(nproc)"
	echo "mem_kb=$(awk '/^MemTotal/{print $2}' /proc/meminfo)"
	echo "boot_uptime=$(cut -d' ' -f1 /proc/uptime)"
} >"$R/guest.env"

# Containers get controllers from the root cgroup.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done

# run.sh --shell: a shell on the console instead of the suite.
if grep -qw secrun.shell /proc/cmdline; then
	echo "SECRUN-VM: shell; /payload has the binaries and scripts (run /payload/guest-run.sh $R); 'exit' powers off"
	setsid cttyhack sh -l
	sync
	poweroff -f
fi

# busybox ash has pipefail.
# shellcheck disable=SC3040
set -o pipefail
/payload/guest-run.sh "$R" 2>&1 | tee "$R/guest-run.log"
rc=$?
echo "$rc" >"$R/status"
echo "uptime_end=$(cut -d' ' -f1 /proc/uptime)" >>"$R/guest.env"
dmesg >"$R/dmesg.log" 2>/dev/null
echo "SECRUN-VM: done, status $rc, uptime $(cut -d' ' -f1 /proc/uptime) s"

cd /
sync
umount /payload || {
	sync
	mount -o remount,ro /payload
}
poweroff -f
