package shim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// words splits a command line on single spaces; the tests write cases
// that need spaces inside an argument as slices.
func words(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func boolp(b bool) *bool { return &b }

const (
	ctrID   = "3f1c0a9e5b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"
	ctrdDir = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/" + ctrID
	crioDir = "/run/containers/storage/overlay-containers/" + ctrID + "/userdata"
)

type parseCase struct {
	name string
	args []string
	// want is compared field by field with the result. Its CommandIndex
	// is only read when Command is set (otherwise -1 is expected), and
	// an empty LogFormat stands for runc's default, "text".
	want   Invocation
	policy bool   // NeedsPolicy
	err    string // when set, ParseArgs must fail with a message containing it
}

var parseCases = []parseCase{
	// containerd's runc shim, through go-runc.
	{
		name: "containerd create",
		args: words("--root /run/containerd/runc/k8s.io --log " + ctrdDir + "/log.json --log-format json --systemd-cgroup create --bundle " + ctrdDir + " --pid-file " + ctrdDir + "/init.pid --console-socket /tmp/pty123/pty.sock " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 7, Root: "/run/containerd/runc/k8s.io", Log: ctrdDir + "/log.json",
			LogFormat: "json", SystemdCgroup: true, Bundle: ctrdDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "containerd create with rootless, no-pivot, preserve-fds, pidfd-socket",
		args: words("--root /run/containerd/runc/default --log " + ctrdDir + "/log.json --log-format json --rootless=false create --bundle " + ctrdDir + " --pid-file " + ctrdDir + "/init.pid --no-pivot --no-new-keyring --preserve-fds 2 --pidfd-socket /run/containerd/s/pidfd.sock " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 7, Root: "/run/containerd/runc/default", Log: ctrdDir + "/log.json",
			LogFormat: "json", Rootless: "false", Bundle: ctrdDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "create with --bundle=",
		args: words("--root /run/containerd/runc/k8s.io --log-format json create --bundle=" + ctrdDir + " --pid-file=" + ctrdDir + "/init.pid " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 4, Root: "/run/containerd/runc/k8s.io", LogFormat: "json",
			Bundle: ctrdDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "containerd run",
		args: words("--root /run/containerd/runc/default --log " + ctrdDir + "/log.json --log-format json run --bundle " + ctrdDir + " --pid-file " + ctrdDir + "/init.pid --detach " + ctrID),
		want: Invocation{Command: "run", CommandIndex: 6, Root: "/run/containerd/runc/default", Log: ctrdDir + "/log.json",
			LogFormat: "json", Bundle: ctrdDir, BundleSet: true, ContainerID: ctrID, Detach: true},
		policy: true,
	},
	{
		name: "containerd exec",
		args: words("--root /run/containerd/runc/k8s.io --log " + ctrdDir + "/log.json --log-format json exec --process /tmp/runc-process123 --detach --pid-file " + ctrdDir + "/exec1.pid " + ctrID),
		want: Invocation{Command: "exec", CommandIndex: 6, Root: "/run/containerd/runc/k8s.io", Log: ctrdDir + "/log.json",
			LogFormat: "json", ProcessFile: "/tmp/runc-process123", Detach: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "containerd exec with a terminal",
		args: words("--root /run/containerd/runc/k8s.io --log " + ctrdDir + "/log.json --log-format json exec --process /run/user/0/runc-process99 --console-socket /tmp/pty9/pty.sock --detach --pid-file " + ctrdDir + "/exec2.pid " + ctrID),
		want: Invocation{Command: "exec", CommandIndex: 6, Root: "/run/containerd/runc/k8s.io", Log: ctrdDir + "/log.json",
			LogFormat: "json", ProcessFile: "/run/user/0/runc-process99", Detach: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name:   "containerd start",
		args:   words("--root /run/containerd/runc/k8s.io --log " + ctrdDir + "/log.json --log-format json start " + ctrID),
		want:   Invocation{Command: "start", CommandIndex: 6, Root: "/run/containerd/runc/k8s.io", Log: ctrdDir + "/log.json", LogFormat: "json", ContainerID: ctrID},
		policy: false,
	},
	{
		name: "containerd kill",
		args: words("--root /run/containerd/runc/k8s.io kill --all " + ctrID + " 9"),
		want: Invocation{Command: "kill", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd delete",
		args: words("--root /run/containerd/runc/k8s.io --log " + ctrdDir + "/log.json --log-format json delete --force " + ctrID),
		want: Invocation{Command: "delete", CommandIndex: 6, Root: "/run/containerd/runc/k8s.io", Log: ctrdDir + "/log.json", LogFormat: "json", ContainerID: ctrID},
	},
	{
		name: "containerd ps",
		args: words("--root /run/containerd/runc/k8s.io ps --format json " + ctrID),
		want: Invocation{Command: "ps", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd top passes ps options after the id",
		args: words("--root /run/containerd/runc/k8s.io ps --format table " + ctrID + " -ef"),
		want: Invocation{Command: "ps", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd stats",
		args: words("--root /run/containerd/runc/k8s.io events --stats " + ctrID),
		want: Invocation{Command: "events", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd events",
		args: words("--root /run/containerd/runc/k8s.io events --interval=5s " + ctrID),
		want: Invocation{Command: "events", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd update reads stdin",
		args: words("--root /run/containerd/runc/k8s.io update --resources - " + ctrID),
		want: Invocation{Command: "update", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd pause",
		args: words("--root /run/containerd/runc/k8s.io pause " + ctrID),
		want: Invocation{Command: "pause", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd resume",
		args: words("--root /run/containerd/runc/k8s.io resume " + ctrID),
		want: Invocation{Command: "resume", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		name: "containerd checkpoint",
		args: words("--root /run/containerd/runc/k8s.io checkpoint --image-path /var/lib/ckpt/img --work-path /var/lib/ckpt/work --tcp-established --ext-unix-sk --shell-job --file-locks --manage-cgroups-mode soft --empty-ns network --leave-running " + ctrID),
		want: Invocation{Command: "checkpoint", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", ContainerID: ctrID},
	},
	{
		// restore builds a container from the bundle too; see NeedsPolicy.
		name: "containerd restore",
		args: words("--root /run/containerd/runc/k8s.io restore --image-path /var/lib/ckpt/img --work-path /var/lib/ckpt/work --detach --pid-file " + ctrdDir + "/init.pid --no-pivot -no-subreaper --bundle " + ctrdDir + " " + ctrID),
		want: Invocation{Command: "restore", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io", Detach: true,
			Bundle: ctrdDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "containerd list",
		args: words("--root /run/containerd/runc/k8s.io list --format=json"),
		want: Invocation{Command: "list", CommandIndex: 2, Root: "/run/containerd/runc/k8s.io"},
	},
	{
		name: "features",
		args: words("features"),
		want: Invocation{Command: "features"},
	},
	{
		name: "state",
		args: words("--root /run/runc state " + ctrID),
		want: Invocation{Command: "state", CommandIndex: 2, Root: "/run/runc", ContainerID: ctrID},
	},
	{
		name: "kill with a signal",
		args: words("kill " + ctrID + " 9"),
		want: Invocation{Command: "kill", ContainerID: ctrID},
	},
	{
		name: "kill with a negative-looking signal",
		args: words("kill " + ctrID + " -9"),
		want: Invocation{Command: "kill", ContainerID: ctrID},
	},
	{
		name: "spec",
		args: words("spec --rootless --bundle /tmp/b"),
		want: Invocation{Command: "spec", Bundle: "/tmp/b", BundleSet: true},
	},
	{name: "--version", args: words("--version"), want: Invocation{}},
	{name: "-v", args: words("-v"), want: Invocation{}},
	{name: "--help", args: words("--help"), want: Invocation{}},
	{name: "-h", args: words("-h"), want: Invocation{}},
	{name: "no arguments", args: nil, want: Invocation{}},
	{name: "help command", args: words("help create"), want: Invocation{Command: "help"}},
	{name: "h command", args: words("h"), want: Invocation{Command: "h"}},
	{name: "unknown command", args: words("frobnicate --x y"), want: Invocation{Command: "frobnicate"}},
	{name: "empty command word", args: []string{"", "create"}, want: Invocation{}},
	{name: "lone dash", args: words("- create"), want: Invocation{Command: "-"}},

	// CRI-O, through conmon (runtime_args.c) and directly.
	{
		name: "conmon create",
		args: words("--systemd-cgroup --root=/run/runc create --bundle " + crioDir + " --pid-file " + crioDir + "/pidfile " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 2, Root: "/run/runc", SystemdCgroup: true,
			Bundle: crioDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "conmon create with a terminal",
		args: words("--systemd-cgroup --root=/run/runc create --bundle " + crioDir + " --pid-file " + crioDir + "/pidfile --no-pivot --no-new-keyring --console-socket /var/run/crio/" + ctrID + "/attach.sock " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 2, Root: "/run/runc", SystemdCgroup: true,
			Bundle: crioDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name:   "conmon exec (ExecSync)",
		args:   words("--root=/run/runc exec --pid-file /tmp/pidfile3945 --process /tmp/exec-process-2210 --detach --tty " + ctrID),
		want:   Invocation{Command: "exec", CommandIndex: 1, Root: "/run/runc", ProcessFile: "/tmp/exec-process-2210", Detach: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name:   "CRI-O streaming exec",
		args:   words("--root /run/runc --systemd-cgroup exec --process /tmp/exec-process-887 " + ctrID),
		want:   Invocation{Command: "exec", CommandIndex: 3, Root: "/run/runc", SystemdCgroup: true, ProcessFile: "/tmp/exec-process-887", ContainerID: ctrID},
		policy: true,
	},
	{
		name: "CRI-O update",
		args: words("--root /run/runc update --resources - " + ctrID),
		want: Invocation{Command: "update", CommandIndex: 2, Root: "/run/runc", ContainerID: ctrID},
	},
	{
		name:   "conmon restore",
		args:   words("--root=/run/runc restore --bundle " + crioDir + " --pid-file " + crioDir + "/pidfile --detach --image-path /var/lib/ckpt --work-path " + crioDir + " --lsm-profile=selinux:system_u:system_r:container_t:s0 " + ctrID),
		want:   Invocation{Command: "restore", CommandIndex: 1, Root: "/run/runc", Bundle: crioDir, BundleSet: true, Detach: true, ContainerID: ctrID},
		policy: true,
	},

	// podman, through conmon's --runtime-arg.
	{
		name: "podman create",
		args: words("--root /run/runc --systemd-cgroup --log-format=json --log /var/lib/containers/storage/overlay-containers/" + ctrID + "/userdata/oci-log create --bundle " + crioDir + " --pid-file " + crioDir + "/pidfile " + ctrID),
		want: Invocation{Command: "create", CommandIndex: 6, Root: "/run/runc", SystemdCgroup: true, LogFormat: "json",
			Log: "/var/lib/containers/storage/overlay-containers/" + ctrID + "/userdata/oci-log", Bundle: crioDir, BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name:   "crun-style create",
		args:   words("--log-format json --log /run/oci.log create --bundle /b --pid-file /b/pid " + ctrID),
		want:   Invocation{Command: "create", CommandIndex: 4, LogFormat: "json", Log: "/run/oci.log", Bundle: "/b", BundleSet: true, ContainerID: ctrID},
		policy: true,
	},
	{
		name: "podman exec",
		args: words("--root /run/runc --log-format=json --log /run/oci.log exec --pid-file /run/exec.pid --process /run/exec.json --detach --tty --preserve-fds 1 --console-socket /run/console.sock " + ctrID),
		want: Invocation{Command: "exec", CommandIndex: 5, Root: "/run/runc", LogFormat: "json", Log: "/run/oci.log",
			ProcessFile: "/run/exec.json", Detach: true, ContainerID: ctrID},
		policy: true,
	},

	// Flag spellings.
	{name: "-b", args: words("create -b /b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "-bundle=", args: words("create -bundle=/b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "--b=", args: words("create --b=/b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "-b=", args: words("create -b=/b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "no bundle", args: words("create id"), want: Invocation{Command: "create", ContainerID: "id"}, policy: true},
	{name: "empty bundle is the cwd", args: []string{"create", "--bundle=", "id"}, want: Invocation{Command: "create", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "last bundle wins", args: words("create --bundle /a --bundle /b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "no container id", args: words("create --bundle /b"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true}, policy: true},
	{name: "single-dash global", args: words("-root=/r -debug create id"), want: Invocation{Command: "create", CommandIndex: 2, Root: "/r", Debug: true, ContainerID: "id"}, policy: true},
	{name: "--debug is boolean", args: words("--debug create --bundle /b id"), want: Invocation{Command: "create", CommandIndex: 1, Debug: true, Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "--debug=false", args: words("--debug=false create id"), want: Invocation{Command: "create", CommandIndex: 1, ContainerID: "id"}, policy: true},
	{name: "--debug=1", args: words("--debug=1 create id"), want: Invocation{Command: "create", CommandIndex: 1, Debug: true, ContainerID: "id"}, policy: true},
	{name: "--rootless takes the next word", args: words("--rootless false create id"), want: Invocation{Command: "create", CommandIndex: 2, Rootless: "false", ContainerID: "id"}, policy: true},
	{name: "--rootless=auto", args: words("--rootless=auto create id"), want: Invocation{Command: "create", CommandIndex: 1, Rootless: "auto", ContainerID: "id"}, policy: true},
	{name: "explicit empty log format", args: words("--log-format= state id"), want: Invocation{Command: "state", CommandIndex: 1, ContainerID: "id"}},
	{name: "--criu is valued", args: words("--criu /usr/sbin/criu checkpoint id"), want: Invocation{Command: "checkpoint", CommandIndex: 2, ContainerID: "id"}},

	// Values that look like subcommands, ids or flags.
	{
		name:   "root named create",
		args:   words("--root create create --bundle=/b id"),
		want:   Invocation{Command: "create", CommandIndex: 2, Root: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"},
		policy: true,
	},
	{
		name:   "everything named run",
		args:   words("--log run run --bundle run run"),
		want:   Invocation{Command: "run", CommandIndex: 2, Log: "run", Bundle: "run", BundleSet: true, ContainerID: "run"},
		policy: true,
	},
	{
		name:   "log path containing run",
		args:   words("--log /x/run --root /x/exec exec -p /x/create id"),
		want:   Invocation{Command: "exec", CommandIndex: 4, Log: "/x/run", Root: "/x/exec", ProcessFile: "/x/create", ContainerID: "id"},
		policy: true,
	},
	{
		name:   "bundle value that looks like a flag",
		args:   words("create --bundle --no-pivot id"),
		want:   Invocation{Command: "create", Bundle: "--no-pivot", BundleSet: true, ContainerID: "id"},
		policy: true,
	},
	{
		name:   "pid file named like the id",
		args:   words("create --pid-file id --bundle /b id"),
		want:   Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"},
		policy: true,
	},
	{
		name:   "flags after the id",
		args:   words("create id --bundle /b"),
		want:   Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"},
		policy: true,
	},
	{
		name:   "global -- ends the global flags",
		args:   words("--root /r -- create --bundle /b id"),
		want:   Invocation{Command: "create", CommandIndex: 3, Root: "/r", Bundle: "/b", BundleSet: true, ContainerID: "id"},
		policy: true,
	},
	{name: "-- before the id", args: words("create --bundle /b -- id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "-- first", args: words("create -- id"), want: Invocation{Command: "create", ContainerID: "id"}, policy: true},
	{name: "-- makes a flag the id", args: words("create -- --bundle"), want: Invocation{Command: "create", ContainerID: "--bundle"}, policy: true},

	// run and exec.
	{name: "run -d", args: words("run -d -b /b id"), want: Invocation{Command: "run", Detach: true, Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "run --detach=false", args: words("run --detach=false --keep --no-subreaper id"), want: Invocation{Command: "run", ContainerID: "id"}, policy: true},
	{
		name:   "exec with a command",
		args:   []string{"exec", "id", "sh", "-c", "echo hi"},
		want:   Invocation{Command: "exec", ContainerID: "id", ExecArgs: []string{"sh", "-c", "echo hi"}},
		policy: true,
	},
	{name: "exec -p", args: words("exec -p /f id"), want: Invocation{Command: "exec", ProcessFile: "/f", ContainerID: "id"}, policy: true},
	{name: "exec --process=", args: words("exec --process=/f -t id"), want: Invocation{Command: "exec", ProcessFile: "/f", ContainerID: "id"}, policy: true},
	{
		name:   "exec: the command's flags are its own",
		args:   words("exec id ls --bundle /b -p /f -u 0 --cap ALL"),
		want:   Invocation{Command: "exec", ContainerID: "id", ExecArgs: words("ls --bundle /b -p /f -u 0 --cap ALL")},
		policy: true,
	},
	{name: "exec without a command", args: words("exec id"), want: Invocation{Command: "exec", ContainerID: "id"}, policy: false},
	{name: "exec -- before the id", args: words("exec -- id sh"), want: Invocation{Command: "exec", ContainerID: "id", ExecArgs: []string{"sh"}}, policy: true},
	{
		name: "exec privilege flags",
		args: words("exec -c CAP_SYS_ADMIN --cap=CAP_NET_ADMIN -u 0:0 -g 10 --additional-gids=11 --apparmor unconfined --process-label system_u:system_r:spc_t:s0 --no-new-privs=false -e A=B --cwd / -t id sh"),
		want: Invocation{Command: "exec", ContainerID: "id", ExecArgs: []string{"sh"},
			ExecCaps: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, ExecUser: "0:0", ExecAdditionalGids: []string{"10", "11"},
			ExecAppArmor: "unconfined", ExecProcessLabel: "system_u:system_r:spc_t:s0", ExecNoNewPrivs: boolp(false)},
		policy: true,
	},
	{name: "exec --cap alone needs policy", args: words("exec --cap CAP_SYS_ADMIN id"), want: Invocation{Command: "exec", ContainerID: "id", ExecCaps: []string{"CAP_SYS_ADMIN"}}, policy: true},
	{name: "exec --user alone needs policy", args: words("exec --user 0 id"), want: Invocation{Command: "exec", ContainerID: "id", ExecUser: "0"}, policy: true},
	{name: "exec --no-new-privs alone needs policy", args: words("exec --no-new-privs id"), want: Invocation{Command: "exec", ContainerID: "id", ExecNoNewPrivs: boolp(true)}, policy: true},
	{name: "exec --apparmor alone needs policy", args: words("exec --apparmor unconfined id"), want: Invocation{Command: "exec", ContainerID: "id", ExecAppArmor: "unconfined"}, policy: true},
	{name: "exec --process-label alone needs policy", args: words("exec --process-label x id"), want: Invocation{Command: "exec", ContainerID: "id", ExecProcessLabel: "x"}, policy: true},
	{name: "exec with an unknown flag fails closed", args: words("exec --frob id"), want: Invocation{Command: "exec", ContainerID: "id", UnknownFlags: []string{"--frob"}}, policy: true},
	{
		// urfave/cli v1 runc hands "--" to the process; v3 drops it.
		// Both agree a command follows, and secrun reports v1's words.
		name:   "exec -- after the id",
		args:   words("exec id -- sh"),
		want:   Invocation{Command: "exec", ContainerID: "id", ExecArgs: []string{"--", "sh"}},
		policy: true,
	},

	// Help and version stop runc before it acts.
	{name: "create --help", args: words("create --help"), want: Invocation{Command: "create"}, policy: false},
	{name: "create -h with an id", args: words("create -h --bundle /b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: false},
	{name: "create --help=false", args: words("create --help=false --bundle /b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: true},
	{name: "--version before create", args: words("--version create --bundle /b id"), want: Invocation{Command: "create", CommandIndex: 1, Bundle: "/b", BundleSet: true, ContainerID: "id"}, policy: false},
	{name: "--help before exec", args: words("--help exec -p /f id"), want: Invocation{Command: "exec", CommandIndex: 1, ProcessFile: "/f", ContainerID: "id"}, policy: false},

	// Unknown flags.
	{name: "unknown global flag with a value", args: words("--frob=1 create --bundle /b id"), want: Invocation{Command: "create", CommandIndex: 1, Bundle: "/b", BundleSet: true, ContainerID: "id", UnknownFlags: []string{"--frob=1"}}, policy: true},
	{name: "unknown global flag without a value", args: words("--frob create --bundle /b id"), err: "unknown global flag --frob"},
	{name: "unknown subcommand flag is boolean", args: words("create --frob --bundle /b id"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id", UnknownFlags: []string{"--frob"}}, policy: true},
	{name: "unknown subcommand flag with a value", args: words("create --frob=x id --bundle /b"), want: Invocation{Command: "create", Bundle: "/b", BundleSet: true, ContainerID: "id", UnknownFlags: []string{"--frob=x"}}, policy: true},

	// Errors.
	{name: "--root without a value", args: words("--root"), err: "flag --root needs a value"},
	{name: "--bundle without a value", args: words("create --bundle"), err: "flag --bundle needs a value"},
	{name: "-b without a value", args: words("create -b"), err: "flag -b needs a value"},
	{name: "-b after the id without a value", args: words("create id -b"), err: "newer runc rejects it (flag -b needs a value)"},
	{name: "exec --process without a value", args: words("exec --process"), err: "flag --process needs a value"},
	{name: "bad boolean", args: words("--debug=maybe create id"), err: `flag --debug: invalid boolean value "maybe"`},
	{name: "bad boolean in a subcommand", args: words("run --detach=maybe id"), err: `flag --detach: invalid boolean value "maybe"`},
	{name: "three dashes", args: words("create ---bundle /b id"), err: "bad flag syntax: ---bundle"},
	{name: "global three dashes", args: words("---root /r create"), err: "bad flag syntax: ---root"},
	{name: "--config", args: words("create --config /elsewhere.json --bundle /b id"), err: "flag --config is not supported"},
	{name: "white space around the subcommand", args: []string{" create", "--bundle", "/b", "id"}, err: "white space"},

	// Command lines the two runc argument parsers read differently.
	{name: "flag after id after boolean", args: words("create --no-pivot id --bundle /b"), err: "the bundle"},
	{name: "help as the id", args: words("create help"), err: "ambiguous"},
	{name: "global flag after the subcommand", args: words("create --root /r --bundle /b id"), err: "ambiguous"},
	{name: "white space around a flag", args: []string{"create", " --bundle", "/b", "id"}, err: "the container id"},
	{name: "exec flags after an empty word", args: []string{"exec", "id", "", "--user", "0", "sh"}, err: "exec process flags"},
}

func TestParseArgs(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(tc.args)
			inv, err := ParseArgs(args)
			if !slices.Equal(args, tc.args) {
				t.Fatalf("ParseArgs modified its argument: %q", args)
			}
			if tc.err != "" {
				if err == nil {
					t.Fatalf("ParseArgs(%q) = %+v, want an error containing %q", tc.args, inv, tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseArgs(%q) error = %q, want it to contain %q", tc.args, err, tc.err)
				}
				if inv != nil {
					t.Fatalf("ParseArgs(%q) returned an invocation with its error", tc.args)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.args, err)
			}
			checkInvocation(t, tc, inv)
			if got := inv.NeedsPolicy(); got != tc.policy {
				t.Errorf("NeedsPolicy() = %v, want %v", got, tc.policy)
			}
		})
	}
}

func checkInvocation(t *testing.T, tc parseCase, got *Invocation) {
	t.Helper()
	want := tc.want
	if want.Command == "" {
		want.CommandIndex = -1
	}
	if want.LogFormat == "" && !slices.ContainsFunc(tc.args, func(a string) bool { return strings.HasPrefix(a, "--log-format=") }) {
		want.LogFormat = "text"
	}
	if !slices.Equal(got.Args, tc.args) {
		t.Errorf("Args = %q, want %q", got.Args, tc.args)
	}
	type field struct {
		name      string
		got, want any
	}
	for _, f := range []field{
		{"Command", got.Command, want.Command},
		{"CommandIndex", got.CommandIndex, want.CommandIndex},
		{"Root", got.Root, want.Root},
		{"Log", got.Log, want.Log},
		{"LogFormat", got.LogFormat, want.LogFormat},
		{"Debug", got.Debug, want.Debug},
		{"SystemdCgroup", got.SystemdCgroup, want.SystemdCgroup},
		{"Rootless", got.Rootless, want.Rootless},
		{"Bundle", got.Bundle, want.Bundle},
		{"BundleSet", got.BundleSet, want.BundleSet},
		{"ContainerID", got.ContainerID, want.ContainerID},
		{"ProcessFile", got.ProcessFile, want.ProcessFile},
		{"Detach", got.Detach, want.Detach},
		{"ExecUser", got.ExecUser, want.ExecUser},
		{"ExecAppArmor", got.ExecAppArmor, want.ExecAppArmor},
		{"ExecProcessLabel", got.ExecProcessLabel, want.ExecProcessLabel},
		{"ExecNoNewPrivs", fmtBoolPtr(got.ExecNoNewPrivs), fmtBoolPtr(want.ExecNoNewPrivs)},
	} {
		if f.got != f.want {
			t.Errorf("%s = %#v, want %#v", f.name, f.got, f.want)
		}
	}
	for _, f := range []struct {
		name      string
		got, want []string
	}{
		{"ExecArgs", got.ExecArgs, want.ExecArgs},
		{"ExecCaps", got.ExecCaps, want.ExecCaps},
		{"ExecAdditionalGids", got.ExecAdditionalGids, want.ExecAdditionalGids},
		{"UnknownFlags", got.UnknownFlags, want.UnknownFlags},
	} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
}

func fmtBoolPtr(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}

func TestParseArgsKeepsArgs(t *testing.T) {
	args := []string{"--root", "/r", "exec", "id", "sh", "-c", "true"}
	inv, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if &inv.Args[0] != &args[0] || len(inv.Args) != len(args) {
		t.Errorf("Args is not the slice given: the delegate must get argv as it came")
	}
	inv.ExecArgs[0] = "changed"
	_ = append(inv.ExecArgs, "more")
	if want := []string{"--root", "/r", "exec", "id", "sh", "-c", "true"}; !slices.Equal(args, want) {
		t.Errorf("changing ExecArgs changed Args: %q", args)
	}
}

func TestParseArgsErrorNamesFlag(t *testing.T) {
	for args, want := range map[string]string{
		"--root":                  "flag --root needs a value",
		"--log":                   "flag --log needs a value",
		"--root /r --log-format":  "flag --log-format needs a value",
		"create --bundle":         "flag --bundle needs a value",
		"run -b":                  "flag -b needs a value",
		"create --pid-file":       "flag --pid-file needs a value",
		"exec -p":                 "flag -p needs a value",
		"exec --cap":              "flag --cap needs a value",
		"update --resources":      "flag --resources needs a value",
		"create --console-socket": "flag --console-socket needs a value",
		"create --pidfd-socket":   "flag --pidfd-socket needs a value",
		"create --preserve-fds":   "flag --preserve-fds needs a value",
	} {
		_, err := ParseArgs(words(args))
		if err == nil || err.Error() != want {
			t.Errorf("ParseArgs(%q) error = %v, want %q", args, err, want)
		}
	}
}

func TestParseArgsFlagTables(t *testing.T) {
	// Spot checks of arity against runc's own tables: a valued flag must
	// swallow the next word, a boolean must not.
	valued := map[string][]string{
		"":        {"root", "log", "log-format", "criu", "rootless"},
		"create":  {"bundle", "b", "console-socket", "pidfd-socket", "pid-file", "preserve-fds"},
		"run":     {"bundle", "b", "console-socket", "pidfd-socket", "pid-file", "preserve-fds"},
		"exec":    {"console-socket", "pidfd-socket", "cwd", "env", "e", "user", "u", "additional-gids", "g", "process", "p", "pid-file", "process-label", "apparmor", "cap", "c", "preserve-fds", "cgroup"},
		"restore": {"bundle", "b", "image-path", "work-path", "pid-file", "console-socket", "manage-cgroups-mode", "empty-ns", "lsm-profile", "lsm-mount-context"},
		"update":  {"resources", "r", "memory", "pids-limit", "cpu-quota"},
		"ps":      {"format", "f"},
		"list":    {"format", "f"},
		"events":  {"interval"},
	}
	boolean := map[string][]string{
		"":        {"debug", "systemd-cgroup", "help", "h", "version", "v"},
		"create":  {"no-pivot", "no-new-keyring", "help", "h"},
		"run":     {"detach", "d", "keep", "no-subreaper", "no-pivot", "no-new-keyring"},
		"exec":    {"tty", "t", "detach", "d", "no-new-privs", "ignore-paused"},
		"restore": {"detach", "d", "no-subreaper", "no-pivot", "tcp-established", "auto-dedup", "lazy-pages"},
		"delete":  {"force", "f"},
		"kill":    {"all", "a"},
		"list":    {"quiet", "q"},
		"events":  {"stats"},
		"spec":    {"rootless"},
	}
	lookup := func(cmd, name string) (runcFlag, bool) {
		if cmd == "" {
			f, ok := runcGlobalFlags()[name]
			return f, ok
		}
		f, ok := lookupCommand(cmd).v1[name]
		return f, ok
	}
	for cmd, names := range valued {
		for _, n := range names {
			if f, ok := lookup(cmd, n); !ok || !f.valued {
				t.Errorf("%s --%s: want a flag that takes a value", cmd, n)
			}
		}
	}
	for cmd, names := range boolean {
		for _, n := range names {
			if f, ok := lookup(cmd, n); !ok || f.valued {
				t.Errorf("%s --%s: want a boolean flag", cmd, n)
			}
		}
	}
	if f := lookupCommand("spec").v3["rootless"]; f.valued {
		t.Errorf("spec's own boolean --rootless must shadow the global one under urfave/cli v3")
	}
	if _, ok := lookupCommand("create").v3["root"]; !ok {
		t.Errorf("urfave/cli v3 runc accepts global flags after the subcommand")
	}
	if _, ok := lookupCommand("create").v3["version"]; ok {
		t.Errorf("--version is local to runc's root command")
	}
}

// TestParseArgsMatchesInstalledRunc checks the urfave/cli v1 reading
// against the runc on this machine: for many create and run command
// lines, the bundle runc tries to chdir into must be the bundle secrun
// read, and secrun must not reject what runc accepts (ambiguity aside).
func TestParseArgsMatchesInstalledRunc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs runc hundreds of times")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc is not installed")
	}
	root, cwd := t.TempDir(), t.TempDir()
	// Mostly flags and their values around one id, so that runc gets
	// far enough to say which bundle it would use.
	vocab := []string{
		"--bundle", "-b", "--bundle=/nonexistent-secrun/a", "-bundle=/nonexistent-secrun/b", "/nonexistent-secrun/c",
		"--no-pivot", "--no-pivot=false", "--no-new-keyring", "--", "--pid-file", "--preserve-fds", "3",
		"--console-socket", "/nonexistent-secrun/sock", "-h=false", "id2", "help", "-", "", "--frob", "-x",
		"---bundle", "-d", "--detach", "--keep",
	}
	// SECRUN_RUNC_ORACLE=N,SEED runs N lines from another seed, for a
	// longer search after changing the parser.
	n, seed := 400, uint64(7)
	if v := os.Getenv("SECRUN_RUNC_ORACLE"); v != "" {
		if _, err := fmt.Sscanf(v, "%d,%d", &n, &seed); err != nil {
			t.Fatalf("SECRUN_RUNC_ORACLE=%q: want N,SEED", v)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var lines [][]string
	for range n {
		cmd := "create"
		if rng.IntN(3) == 0 {
			cmd = "run"
		}
		var words []string
		for range rng.IntN(6) {
			words = append(words, vocab[rng.IntN(len(vocab))])
		}
		words = slices.Insert(words, rng.IntN(len(words)+1), "id1")
		lines = append(lines, append([]string{"--root", root, cmd}, words...))
	}
	chdir := regexp.MustCompile(`chdir (.*): no such file or directory`)
	informative, refused := 0, 0
	for _, line := range lines {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, runc, line...)
		cmd.Dir = cwd
		out, _ := cmd.CombinedOutput()
		cancel()
		var runcBundle string
		switch m := chdir.FindSubmatch(out); {
		case m != nil:
			runcBundle = string(m[1])
		case strings.Contains(string(out), "config.json not found"):
			runcBundle = "" // runc stayed in the cwd
		case strings.Contains(string(out), "Incorrect Usage"), strings.Contains(string(out), "USAGE:"):
			// runc refused or printed help: nothing was created.
			continue
		default:
			t.Logf("runc %q: unrecognized output %q", line, out)
			continue
		}
		informative++
		inv, err := ParseArgs(line)
		if err != nil {
			if !strings.Contains(err.Error(), "ambiguous") {
				t.Errorf("ParseArgs(%q): %v, but runc accepts it (bundle %q)", line, err, runcBundle)
			}
			refused++
			continue
		}
		if inv.Bundle != runcBundle {
			t.Errorf("ParseArgs(%q).Bundle = %q, runc uses %q", line, inv.Bundle, runcBundle)
		}
		if !inv.NeedsPolicy() {
			t.Errorf("ParseArgs(%q).NeedsPolicy() = false, but runc goes ahead", line)
		}
	}
	if informative < 50 {
		t.Skipf("only %d of %d runc runs told which bundle it used", informative, len(lines))
	}
	t.Logf("%d of %d command lines compared with %s; secrun refused %d of them as ambiguous", informative, len(lines), runc, refused)
}
