#!/bin/sh
# The VM's own checks, in POSIX sh: what the issue asks the VM to prove
# for real, whatever the main suite covers. guest-run.sh runs them in every
# matrix row, next to `secrunctl conformance` (or alone, when the suite is
# not available or SECRUN_VM_SUITE=checks). They run real containers
# through the runtime under test and write the suite's three reports:
# report.tap, report.junit.xml, report.json. Exit status 1 when a check fails.
#
#   vm-checks.sh --runtime PATH --report-dir DIR [--name NAME]
#
# A runtime whose name starts with "secrun" gets its AppArmor Localhost
# request through secrun's Pod annotation; any other runtime gets it in
# process.apparmorProfile directly, as containerd would write it.
# Checks (names are stable; report.sh tabulates them across runtimes):
#   runtime.run                 a container runs and prints its marker
#   cgroup.v2                   the container sees cgroup2 and its pids limit
#   caps.bounding               bounding set is NET_BIND_SERVICE only (restricted)
#   nnp                         no_new_privs is set
#   seccomp.filter              a seccomp filter is installed
#   user.nonroot                the process runs as a non-root uid
#   apparmor.kernel             the kernel has AppArmor on, securityfs mounted
#   apparmor.default.loaded     secrun-default is loaded and confines the process
#   apparmor.default.denied     a read the default profile denies fails with EACCES
#   apparmor.localhost.missing  a Localhost profile that is not loaded fails create, with a clear error
#   apparmor.localhost.enforced a loaded Localhost profile's deny rule is enforced and logged
#   apparmor.default.concurrent (secrun only) 20 concurrent runs, with the default
#                               profile unloaded first, all come out confined by it
set -u

runtime='' dir='' name=''
while [ $# -gt 0 ]; do
	case $1 in
	--runtime) runtime=$2; shift 2 ;;
	--report-dir) dir=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	*) echo "vm-checks: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$runtime" ] && [ -n "$dir" ] || { echo "usage: vm-checks.sh --runtime PATH --report-dir DIR [--name NAME]" >&2; exit 2; }
[ -n "$name" ] || name=$(basename "$runtime")
case $(basename "$runtime") in secrun*) is_secrun=1 ;; *) is_secrun=0 ;; esac

mkdir -p "$dir"
work=$(mktemp -d /tmp/vm-checks.XXXXXX)
state=$work/.runtime-state
mkdir -p "$state"
results=$work/results
: >"$results"
trap 'rm -rf "$work"' EXIT

# result STATUS NAME DETAIL: STATUS is ok, fail or skip.
result() {
	printf '%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ' | cut -c1-400)" >>"$results"
	printf '  %-4s %s: %s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ' | cut -c1-160)"
}

# bundle ID SCRIPT [APPARMOR_PROFILE]: a bundle whose process runs SCRIPT
# (a file in the rootfs) as root, with containerd's default capabilities,
# a pids limit, a tmpfs at /scratch, a cgroup namespace.
bundle() {
	b=$work/$1
	mkdir -p "$b/rootfs/bin" "$b/rootfs/etc" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp" "$b/rootfs/scratch"
	ln /bin/busybox "$b/rootfs/bin/busybox" 2>/dev/null || cp /bin/busybox "$b/rootfs/bin/busybox"
	for a in sh cat grep ls id echo awk tr; do ln -s busybox "$b/rootfs/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$b/rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$b/rootfs/etc/group"
	# runc gives a tmpfs the mode of the directory it covers.
	chmod 1777 "$b/rootfs/tmp" "$b/rootfs/scratch"
	printf '%s\n' "$2" >"$b/rootfs/t.sh"
	chmod 0755 "$b/rootfs/t.sh"
	aa_field='' annotations='{}'
	if [ -n "${3:-}" ]; then
		if [ "$is_secrun" = 1 ]; then
			annotations='{"secrun.dev/security-context": "{\"appArmorProfile\":{\"type\":\"Localhost\",\"localhostProfile\":\"'"$3"'\"}}"}'
		else
			aa_field='"apparmorProfile": "'"$3"'",'
		fi
	fi
	caps='"CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"'
	cat >"$b/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/sh", "/t.sh"],
    "env": ["PATH=/bin", "HOME=/"],
    "cwd": "/",
    $aa_field
    "capabilities": {"bounding": [$caps], "effective": [$caps], "permitted": [$caps]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": false
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "vm-checks",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=1024k"]}
  ],
  "annotations": $annotations,
  "linux": {
    "resources": {"pids": {"limit": 99}},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
}

# run ID: runs bundle ID; output in $work/ID.out, status in $rc.
run() {
	timeout 60 "$runtime" --root "$state" run --bundle "$work/$1" "vmc-$1-$$" >"$work/$1.out" 2>&1
	rc=$?
	"$runtime" --root "$state" delete -f "vmc-$1-$$" >/dev/null 2>&1
	return 0
}
field() { sed -n "s/^$1[:=][[:space:]]*//p" "$work/state.out" | head -n1; }
denials() { dmesg 2>/dev/null | grep 'apparmor="DENIED"' | grep -c "profile=\"$1\""; }
# denials_after PROFILE N: the count once it exceeds N, waiting up to 2 s
# (kauditd prints audit records asynchronously).
denials_after() {
	i=0
	while [ $i -lt 20 ]; do
		c=$(denials "$1")
		[ "$c" -gt "$2" ] && break
		usleep 100000
		i=$((i + 1))
	done
	echo "$c"
}

echo "vm-checks: $name ($runtime)"

# One container reports its whole security state.
bundle state 'echo marker=vm-checks-ran
grep -E "^(CapBnd|CapEff|NoNewPrivs|Seccomp):" /proc/self/status
echo "uid=$(id -u)"
echo "apparmor=$(cat /proc/self/attr/current 2>&1)"
echo "cgroupfs=$(awk "\$2 == \"/sys/fs/cgroup\" { print \$3 }" /proc/mounts)"
echo "pidsmax=$(cat /sys/fs/cgroup/pids.max 2>&1)"
if [ -e /proc/kcore ]; then out=$(cat /proc/kcore 2>&1 >/dev/null); echo "kcore=$?:$(echo $out)"; else echo kcore=absent; fi'
run state
if grep -q '^marker=vm-checks-ran$' "$work/state.out"; then
	result ok runtime.run "exit $rc"
else
	result fail runtime.run "exit $rc: $(head -c 300 "$work/state.out")"
fi

cg="$(field cgroupfs) pids.max=$(field pidsmax)"
if [ "$(field cgroupfs)" = cgroup2 ] && [ "$(field pidsmax)" = 99 ]; then
	result ok cgroup.v2 "$cg"
else
	result fail cgroup.v2 "want cgroup2 pids.max=99, got $cg"
fi

# expect NAME WANT GOT: pass when GOT matches the pattern WANT.
# shellcheck disable=SC2254 # WANT is a pattern
expect() {
	case $3 in
	$2) result ok "$1" "$3" ;;
	*) result fail "$1" "want $2, got '$3'" ;;
	esac
}
expect caps.bounding 0000000000000400 "$(field CapBnd)"
expect nnp 1 "$(field NoNewPrivs)"
expect seccomp.filter 2 "$(field Seccomp)"
expect user.nonroot '[1-9]*' "$(field uid)"

aa_on=0
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && [ -f /sys/kernel/security/apparmor/profiles ] && command -v apparmor_parser >/dev/null; then
	aa_on=1
	result ok apparmor.kernel "lsm=$(cat /sys/kernel/security/lsm)"
else
	result fail apparmor.kernel "AppArmor is not enabled in this kernel (or securityfs/apparmor_parser missing)"
fi

if [ $aa_on = 1 ]; then
	v=$(field apparmor)
	if grep -q '^secrun-default (enforce)$' /sys/kernel/security/apparmor/profiles && [ "$v" = "secrun-default (enforce)" ]; then
		result ok apparmor.default.loaded "profile loaded, process confined by '$v'"
	else
		result fail apparmor.default.loaded "want the process confined by 'secrun-default (enforce)', got '$v'"
	fi
	# secrun-default (moby's profile) denies every access to /proc/kcore.
	# The path is masked (a bind of /dev/null, mode 0666), so without the
	# profile the read succeeds and returns nothing; with it, EACCES.
	# Explicit deny rules are not logged by the kernel: the errno is the
	# evidence, and the bare-runtime rows show the contrast.
	v=$(field kcore)
	case $v in
	absent) result fail apparmor.default.denied "/proc/kcore is absent in the container (the guest kernel has no CONFIG_PROC_KCORE?)" ;;
	0:*) result fail apparmor.default.denied "reading /proc/kcore (masked) was allowed: the profile did not confine the read ($v)" ;;
	*"Permission denied"*) result ok apparmor.default.denied "reading /proc/kcore was denied by the profile: $v" ;;
	*) result fail apparmor.default.denied "want Permission denied reading /proc/kcore, got '$v'" ;;
	esac
else
	result skip apparmor.default.loaded "AppArmor is not enabled in this kernel"
	result skip apparmor.default.denied "AppArmor is not enabled in this kernel"
fi

if [ $aa_on = 1 ]; then
	missing=secrun-vm-missing-$$
	bundle missing 'echo marker=vm-checks-ran' "$missing"
	run missing
	err=$(grep -v '^marker=' "$work/missing.out" | head -n 3 | tr '\n' ' ')
	if [ $rc = 0 ] || grep -q '^marker=vm-checks-ran$' "$work/missing.out"; then
		result fail apparmor.localhost.missing "create succeeded with Localhost profile $missing, which is not loaded"
	elif [ "$is_secrun" = 0 ]; then
		result ok apparmor.localhost.missing "create failed (exit $rc): $err"
	elif echo "$err" | grep -q "$missing" && echo "$err" | grep -q 'no profile of that name is loaded'; then
		result ok apparmor.localhost.missing "create failed (exit $rc) with a clear error: $err"
	else
		result fail apparmor.localhost.missing "create failed (exit $rc) but the error does not name the missing profile: $err"
	fi

	cat >"$work/deny.profile" <<'EOF'
profile secrun-vm-deny-write flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  signal,
  ptrace,
  umount,
  audit deny /scratch/denied-file w,
}
EOF
	if ! out=$(apparmor_parser -r "$work/deny.profile" 2>&1); then
		result fail apparmor.localhost.enforced "apparmor_parser could not load the test profile: $out"
	else
		bundle deny 'echo x >/scratch/allowed-file && echo allowed=yes
echo x >/scratch/denied-file && echo denied=no' secrun-vm-deny-write
		before=$(denials secrun-vm-deny-write)
		run deny
		after=$(denials_after secrun-vm-deny-write "$before")
		out=$(tr '\n' ' ' <"$work/deny.out")
		# Not anchored: busybox writes its error message in pieces, and
		# the container's stdout and stderr share the file.
		if grep -q 'allowed=yes' "$work/deny.out" && ! grep -q 'denied=no' "$work/deny.out" &&
			grep -q 'Permission denied' "$work/deny.out" && [ "$after" -gt "$before" ]; then
			result ok apparmor.localhost.enforced "write allowed where the profile allows, denied where it denies; kernel logged the denial"
		else
			result fail apparmor.localhost.enforced "exit $rc, kernel denials $before->$after: $out; kernel: $(dmesg | grep 'apparmor="DENIED"' | tail -n 2)"
		fi
	fi
else
	result skip apparmor.localhost.missing "AppArmor is not enabled in this kernel"
	result skip apparmor.localhost.enforced "AppArmor is not enabled in this kernel"
fi

# Concurrent creates that all find the default profile missing race to
# load it (secrun serialises the load under a file lock and looks again).
if [ $aa_on = 1 ] && [ "$is_secrun" = 1 ]; then
	printf 'profile secrun-default {}\n' >"$work/unload.profile"
	apparmor_parser -R "$work/unload.profile" >/dev/null 2>&1
	if grep -q '^secrun-default ' /sys/kernel/security/apparmor/profiles; then
		result fail apparmor.default.concurrent "could not unload secrun-default to start the race"
	else
		n=20 i=0
		# run, not create: the profile is applied at exec, so only a started
		# process shows it. The state bundle prints its own label.
		while [ $i -lt $n ]; do
			( timeout 120 "$runtime" --root "$state" run --bundle "$work/state" "vmc-race-$i-$$" >"$work/race-$i.out" 2>&1; echo $? >"$work/race-$i.rc" ) &
			i=$((i + 1))
		done
		wait
		ok=0 bad=''
		i=0
		while [ $i -lt $n ]; do
			if [ "$(cat "$work/race-$i.rc")" = 0 ] && grep -q '^apparmor=secrun-default (enforce)$' "$work/race-$i.out"; then
				ok=$((ok + 1))
			else
				bad="$bad [$i: rc $(cat "$work/race-$i.rc"): $(grep -v '^Cap' "$work/race-$i.out" | head -c 200 | tr '\n' ' ')]"
			fi
			"$runtime" --root "$state" delete -f "vmc-race-$i-$$" >/dev/null 2>&1
			i=$((i + 1))
		done
		if [ $ok = $n ]; then
			result ok apparmor.default.concurrent "$n concurrent runs, profile loaded under the race, every container confined by secrun-default"
		else
			result fail apparmor.default.concurrent "$ok of $n runs came out confined:$bad"
		fi
	fi
elif [ "$is_secrun" = 1 ]; then
	result skip apparmor.default.concurrent "AppArmor is not enabled in this kernel"
fi

# Reports.
awk -F'\t' '
	BEGIN { print "TAP version 13" }
	{ n++; line[n] = $0 }
	END {
		print "1.." n
		for (i = 1; i <= n; i++) {
			split(line[i], f, "\t")
			if (f[1] == "ok") print "ok " i " - " f[2]
			else if (f[1] == "skip") print "ok " i " - " f[2] " # SKIP " f[3]
			else { print "not ok " i " - " f[2]; print "  # " f[3] }
		}
	}' "$results" >"$dir/report.tap"

awk -F'\t' -v suite="$name" '
	function x(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); gsub(/"/, "\\&quot;", s); return s }
	{ n++; st[n] = $1; nm[n] = $2; dt[n] = $3; if ($1 == "fail") f++; if ($1 == "skip") s++ }
	END {
		print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		print "<testsuites>"
		printf "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" skipped=\"%d\">\n", x(suite), n, f, s
		for (i = 1; i <= n; i++) {
			printf "    <testcase classname=\"%s\" name=\"%s\">", x(suite), x(nm[i])
			if (st[i] == "fail") printf "<failure message=\"%s\"/>", x(dt[i])
			else if (st[i] == "skip") printf "<skipped message=\"%s\"/>", x(dt[i])
			else printf "<system-out>%s</system-out>", x(dt[i])
			print "</testcase>"
		}
		print "  </testsuite>"
		print "</testsuites>"
	}' "$results" >"$dir/report.junit.xml"

# JSON strings: escaped by sed (awk replacement strings treat backslashes
# differently from one awk to another).
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$results" | awk -F'\t' -v suite="$name" -v rt="$runtime" '
	function j(s) { return "\"" s "\"" }
	{ n++; st[n] = ($1 == "ok" ? "pass" : $1); nm[n] = $2; dt[n] = $3; c[st[n]]++ }
	END {
		printf "{\"suite\":\"vm-checks\",\"name\":%s,\"runtime\":%s,\"summary\":{\"pass\":%d,\"fail\":%d,\"skip\":%d},\"tests\":[", j(suite), j(rt), c["pass"], c["fail"], c["skip"]
		for (i = 1; i <= n; i++) printf "%s{\"name\":%s,\"status\":%s,\"detail\":%s}", (i > 1 ? "," : ""), j(nm[i]), j(st[i]), j(dt[i])
		print "]}"
	}' >"$dir/report.json"

! grep -q '^fail' "$results"
