package shim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/internal/testenv"
	"github.com/secrun/secrun/spec"
)

// hostileCase is one way past a policy that reads only the
// securityContext, as a Pod author (hostPath, images, annotations) or any
// client writing config.json would try it. Each runs for real: under bare
// runc the attack works (probe's output says so), and under baseline and
// restricted, enforce and harden, secrun refuses it with one line naming
// the rule, the config.json field and the fix, before runc runs.
type hostileCase struct {
	name string
	// edit makes the bundle hostile; dir is a scratch directory on the
	// host for the attack's marker files.
	edit func(t *testing.T, b *testenv.Bundle, dir string)
	// probe runs in the container; it prints "GOT-THROUGH" when the
	// attack worked, and the test also checks check (if set).
	probe string
	check func(t *testing.T, dir, stdout string) bool
	// rule and field are what the refusal line must name.
	rule, field string
	// presets refuse it; nil means baseline and restricted.
	presets []string
}

func linuxOf(b *testenv.Bundle) map[string]any { return b.Config["linux"].(map[string]any) }

func appendList(m map[string]any, key string, v ...any) {
	l, _ := m[key].([]any)
	m[key] = append(l, v...)
}

func setNamespacePath(b *testenv.Bundle, typ, path string) {
	for _, n := range linuxOf(b)["namespaces"].([]any) {
		if ns := n.(map[string]any); ns["type"] == typ {
			ns["path"] = path
		}
	}
}

func allowDevice(b *testenv.Bundle, rule map[string]any) {
	res, _ := linuxOf(b)["resources"].(map[string]any)
	if res == nil {
		res = map[string]any{}
		linuxOf(b)["resources"] = res
	}
	appendList(res, "devices", rule)
}

func hostileCases() []hostileCase {
	self := os.Getpid()
	return []hostileCase{{
		name: "createRuntime hook runs as host root",
		edit: func(t *testing.T, b *testenv.Bundle, dir string) {
			b.Config["hooks"] = map[string]any{"createRuntime": []any{map[string]any{
				"path": "/bin/sh", "args": []any{"sh", "-c", "id -u > " + filepath.Join(dir, "hook-ran")},
			}}}
		},
		probe: "true",
		check: func(t *testing.T, dir, _ string) bool {
			b, err := os.ReadFile(filepath.Join(dir, "hook-ran"))
			return err == nil && strings.TrimSpace(string(b)) == "0"
		},
		rule: "hooks", field: "hooks.createRuntime[0].path",
	}, {
		name: "host network namespace by path",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			setNamespacePath(b, "network", fmt.Sprintf("/proc/%d/ns/net", self))
		},
		probe: fmt.Sprintf(`[ "$(busybox readlink /proc/self/ns/net)" = %q ] && echo GOT-THROUGH`, mustReadlink("/proc/self/ns/net")),
		rule:  "hostNamespaces", field: "linux.namespaces[type=network].path",
	}, {
		name: "host IPC namespace by path",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			setNamespacePath(b, "ipc", fmt.Sprintf("/proc/%d/ns/ipc", self))
		},
		probe: fmt.Sprintf(`[ "$(busybox readlink /proc/self/ns/ipc)" = %q ] && echo GOT-THROUGH`, mustReadlink("/proc/self/ns/ipc")),
		rule:  "hostNamespaces", field: "linux.namespaces[type=ipc].path",
	}, {
		name: "host UTS namespace by path",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			setNamespacePath(b, "uts", fmt.Sprintf("/proc/%d/ns/uts", self))
		},
		probe: fmt.Sprintf(`[ "$(busybox readlink /proc/self/ns/uts)" = %q ] && echo GOT-THROUGH`, mustReadlink("/proc/self/ns/uts")),
		rule:  "hostNamespaces", field: "linux.namespaces[type=uts].path",
	}, {
		name: "bind mount of the host's / read-write (a hostPath volume)",
		edit: func(t *testing.T, b *testenv.Bundle, dir string) {
			os.WriteFile(filepath.Join(dir, "host-secret"), []byte("host-only\n"), 0o600)
			appendList(b.Config, "mounts", map[string]any{"destination": "/host", "type": "bind", "source": "/", "options": []any{"rbind", "rw"}})
		},
		probe: "", // set per run: reads dir/host-secret through /host
		rule:  "hostPaths", field: "mounts[7].source",
	}, {
		name: "bind mount of /run, where the runtimes keep their sockets",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			appendList(b.Config, "mounts", map[string]any{"destination": "/c", "type": "bind", "source": "/run", "options": []any{"rbind", "rw"}})
		},
		probe: `[ -d /c/lock ] || [ -d /c/systemd ] || [ -e /c/runc ] || [ "$(busybox ls /c | busybox wc -l)" -gt 0 ] && echo GOT-THROUGH`,
		rule:  "hostPaths", field: "mounts[7].source",
	}, {
		name: "the host's /proc over the container's /proc",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			appendList(b.Config, "mounts", map[string]any{"destination": "/proc", "type": "bind", "source": "/proc", "options": []any{"rbind", "rw"}})
		},
		probe: fmt.Sprintf(`[ -e /proc/%d/status ] && echo GOT-THROUGH`, self),
		rule:  "hostPaths", field: "mounts[7].source",
	}, {
		name: "a second proc mount without the masks",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			appendList(b.Config, "mounts", map[string]any{"destination": "/hostproc", "type": "proc", "source": "proc"})
		},
		probe: `[ "$(busybox wc -c < /hostproc/keys)" -gt 0 ] && [ "$(busybox wc -c < /proc/keys)" = 0 ] && echo GOT-THROUGH`,
		rule:  "mounts", field: "mounts[7]",
	}, {
		name: "/sys writable",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			for _, m := range b.Config["mounts"].([]any) {
				if mm := m.(map[string]any); mm["type"] == "sysfs" {
					mm["options"] = []any{"nosuid", "noexec", "nodev", "rw"}
				}
			}
		},
		// Nothing is written to sysfs: that would reach the host. The
		// kernel's mount table says it would be allowed.
		probe: `busybox grep -E '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ /sys rw' /proc/self/mountinfo >/dev/null && echo GOT-THROUGH`,
		rule:  "mounts", field: "mounts[5].options",
	}, {
		name: "device cgroup wildcard and /dev/kvm",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			appendList(linuxOf(b), "devices", map[string]any{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232})
			allowDevice(b, map[string]any{"allow": true, "type": "c", "major": -1, "minor": -1, "access": "rwm"})
		},
		probe: `exec 3</dev/kvm && echo GOT-THROUGH`,
		rule:  "devices", field: "linux.resources.devices[1]",
	}, {
		name: "block devices without numbers and a loop device",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			appendList(linuxOf(b), "devices", map[string]any{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0})
			allowDevice(b, map[string]any{"allow": true, "type": "b", "access": "r"})
		},
		probe: `exec 3</dev/loop0 && echo GOT-THROUGH`,
		rule:  "devices", field: "linux.resources.devices[1]",
	}, {
		name: "a fake sandbox with the host's network",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			b.Config["annotations"] = map[string]any{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri-o.ContainerType": "sandbox"}
			setNamespacePath(b, "network", fmt.Sprintf("/proc/%d/ns/net", self))
		},
		probe: fmt.Sprintf(`[ "$(busybox readlink /proc/self/ns/net)" = %q ] && [ "$(id -u)" = 0 ] && echo GOT-THROUGH`, mustReadlink("/proc/self/ns/net")),
		rule:  "hostNamespaces", field: "linux.namespaces[type=network].path",
	}, {
		name: "user namespace mapping the process to host root",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			// The file belongs to host root, mode 0600: only host uid 0
			// reads it.
			os.WriteFile(filepath.Join(b.Dir, "rootfs", "root-only"), []byte("secret\n"), 0o600)
			appendList(linuxOf(b), "namespaces", map[string]any{"type": "user"})
			// runc 1.1 needs container root mapped; it goes to an
			// unprivileged host uid, and the process's uid 1000 to host 0.
			m := []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 1}, map[string]any{"containerID": 1000, "hostID": 0, "size": 1}}
			linuxOf(b)["uidMappings"], linuxOf(b)["gidMappings"] = m, m
			for _, mt := range b.Config["mounts"].([]any) {
				if mm := mt.(map[string]any); mm["type"] == "devpts" {
					mm["options"] = []any{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}
				}
			}
			b.Config["process"].(map[string]any)["user"] = map[string]any{"uid": 1000, "gid": 1000}
			delete(linuxOf(b), "sysctl")
		},
		probe: `[ "$(id -u)" = 1000 ] && busybox cat /root-only >/dev/null && echo GOT-THROUGH`,
		rule:  "userNamespace", field: "linux.uidMappings, linux.gidMappings",
	}, {
		// Restricted asks for RuntimeDefault or Localhost; "any filter
		// whose default denies" includes RuntimeDefault with unshare,
		// mount and setns allowed on top. The bundle is otherwise what
		// restricted wants, so the seccomp floor is what refuses it.
		name: "a seccomp filter weaker than RuntimeDefault under restricted",
		edit: func(t *testing.T, b *testenv.Bundle, _ string) {
			caps := []string{"CAP_NET_BIND_SERVICE"}
			floor, err := spec.RuntimeDefaultFor(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
			if err != nil {
				t.Fatal(err)
			}
			floor.Syscalls = append(floor.Syscalls, specs.LinuxSyscall{Names: []string{"unshare", "mount", "setns"}, Action: specs.ActAllow})
			raw, _ := json.Marshal(floor)
			var profile map[string]any
			json.Unmarshal(raw, &profile)
			linuxOf(b)["seccomp"] = profile
			proc := b.Config["process"].(map[string]any)
			proc["capabilities"] = map[string]any{"bounding": caps, "effective": []any{}, "permitted": []any{}}
			proc["user"] = map[string]any{"uid": 1000, "gid": 1000}
			proc["noNewPrivileges"] = true
		},
		// RuntimeDefault without SYS_ADMIN refuses unshare(2) outright.
		probe: `busybox unshare -U true && echo GOT-THROUGH`,
		rule:  "seccomp", field: "linux.seccomp", presets: []string{"restricted"},
	}}
}

func mustReadlink(p string) string {
	s, err := os.Readlink(p)
	if err != nil {
		panic(err)
	}
	return s
}

func TestE2EHostileBundles(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			build := func() *testenv.Bundle {
				probe := tc.probe
				if probe == "" {
					probe = fmt.Sprintf(`busybox cat %q >/dev/null && echo GOT-THROUGH`, "/host"+filepath.Join(dir, "host-secret"))
				}
				b := testenv.NewBundle(t, "/bin/sh", "-c", probe)
				tc.edit(t, b, dir)
				b.Save(t)
				return b
			}
			// Bare runc runs it: the attack is real.
			b := build()
			r := testenv.Run(t, nil, "runc", "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, testenv.ContainerID(t))
			worked := strings.Contains(r.Stdout, "GOT-THROUGH")
			if tc.check != nil {
				worked = tc.check(t, dir, r.Stdout)
			}
			if !worked {
				t.Fatalf("under bare runc the attack did not work, so this case proves nothing (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
			}
			os.Remove(filepath.Join(dir, "hook-ran"))
			presets := tc.presets
			if presets == nil {
				presets = []string{"baseline", "restricted"}
			}
			for _, preset := range presets {
				for _, mode := range []string{"enforce", "harden"} {
					b := build()
					before, _ := os.ReadFile(b.Path())
					env, _ := testenv.WriteConfig(t, fmt.Sprintf("policies:\n  %s:\n    mode: %s\n", preset, mode))
					id := testenv.ContainerID(t)
					r := testenv.Run(t, env, filepath.Join(bin, "secrun-"+preset), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, id)
					line := strings.TrimSpace(r.Stderr)
					switch {
					case r.Code == 0 || strings.Contains(r.Stdout, "GOT-THROUGH"):
						t.Errorf("%s/%s: the hostile bundle ran (exit %d):\n%s", preset, mode, r.Code, r.Stdout)
					case strings.Contains(line, "\n"):
						t.Errorf("%s/%s: the refusal is not one line:\n%s", preset, mode, line)
					case !strings.HasPrefix(line, fmt.Sprintf("secrun: policy %s (%s) refused container %s: %s: %s: ", preset, mode, id, tc.rule, tc.field)) || !strings.Contains(line, "; fix: "):
						t.Errorf("%s/%s: the refusal does not name rule %s, field %s and a fix:\n%s", preset, mode, tc.rule, tc.field, line)
					}
					if tc.check != nil && tc.check(t, dir, r.Stdout) {
						t.Errorf("%s/%s: the attack ran before the refusal", preset, mode)
					}
					if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
						t.Errorf("%s/%s: a refused create changed config.json", preset, mode)
					}
				}
			}
		})
	}
}

// TestE2EPodVolumes is a Pod's bundle as containerd writes it for a Pod
// with emptyDir, configMap, secret and projected volumes: every bind
// source is in the kubelet's pod directory or the sandbox's files, and
// baseline starts it. The same bundle with a hostPath volume of / is
// refused.
func TestE2EPodVolumes(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	node := t.TempDir()
	pod := filepath.Join(node, "kubelet", "pods", "6c1f0a8e-pod")
	sbx := filepath.Join(node, "containerd", "io.containerd.grpc.v1.cri", "sandboxes", "f00dsandbox")
	type vol struct{ src, dst, content string }
	vols := []vol{
		{filepath.Join(pod, "volumes", "kubernetes.io~empty-dir", "cache"), "/cache", ""},
		{filepath.Join(pod, "volumes", "kubernetes.io~configmap", "conf"), "/etc/app", "conf"},
		{filepath.Join(pod, "volumes", "kubernetes.io~secret", "creds"), "/var/run/secrets/app", "secret"},
		{filepath.Join(pod, "volumes", "kubernetes.io~projected", "kube-api-access-x7k2p"), "/var/run/secrets/kubernetes.io/serviceaccount", "token"},
		{filepath.Join(pod, "etc-hosts"), "/etc/hosts", "127.0.0.1 localhost\n"},
		{filepath.Join(pod, "containers", "app", "4f2a9c1d"), "/dev/termination-log", ""},
		{filepath.Join(sbx, "hostname"), "/etc/hostname", "web-0\n"},
		{filepath.Join(sbx, "resolv.conf"), "/etc/resolv.conf", "nameserver 127.0.0.53\n"},
	}
	var probe []string
	build := func(extra ...map[string]any) *testenv.Bundle {
		b := testenv.NewBundle(t, "/bin/sh", "-c", strings.Join(probe, " && ")+" && echo VOLUMES-OK")
		b.Config["annotations"] = map[string]any{
			"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "app",
			"io.kubernetes.cri.sandbox-id": "f00dsandbox", "io.kubernetes.cri.sandbox-uid": "6c1f0a8e-pod",
			"io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "default",
		}
		for _, v := range vols {
			appendList(b.Config, "mounts", map[string]any{"destination": v.dst, "type": "bind", "source": v.src, "options": []any{"rbind", "rprivate", "rw"}})
		}
		for _, m := range extra {
			appendList(b.Config, "mounts", m)
		}
		b.Save(t)
		return b
	}
	for _, v := range vols {
		switch {
		case strings.HasPrefix(filepath.Base(filepath.Dir(v.src)), "kubernetes.io~"):
			os.MkdirAll(v.src, 0o755)
			if v.content != "" {
				os.WriteFile(filepath.Join(v.src, "data"), []byte(v.content), 0o644)
				probe = append(probe, fmt.Sprintf("[ \"$(cat %s/data)\" = %s ]", v.dst, v.content))
			}
		default:
			os.MkdirAll(filepath.Dir(v.src), 0o755)
			os.WriteFile(v.src, []byte(v.content), 0o644)
		}
	}
	probe = append(probe, "touch /cache/written", "grep -q web-0 /etc/hostname")
	env, _ := testenv.WriteConfig(t, "")
	b := build()
	r := testenv.Run(t, env, filepath.Join(bin, "secrun-baseline"), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, testenv.ContainerID(t))
	if r.Code != 0 || !strings.Contains(r.Stdout, "VOLUMES-OK") {
		t.Fatalf("baseline did not start the Pod with its own volumes (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(vols[0].src, "written")); err != nil {
		t.Errorf("the emptyDir write did not reach the Pod's volume: %v", err)
	}
	b = build(map[string]any{"destination": "/host", "type": "bind", "source": "/", "options": []any{"rbind", "rprivate", "rw"}})
	id := testenv.ContainerID(t)
	r = testenv.Run(t, env, filepath.Join(bin, "secrun-baseline"), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, id)
	want := fmt.Sprintf("secrun: policy baseline (enforce) refused container %s: hostPaths: mounts[%d].source: bind mount of host path / at /host", id, 7+len(vols))
	if r.Code == 0 || !strings.HasPrefix(strings.TrimSpace(r.Stderr), want) {
		t.Fatalf("a hostPath volume of / was not refused (exit %d):\n%s\nwant a line starting %q", r.Code, r.Stderr, want)
	}
}

// TestE2ERuntimeCVEs replays the bundles of runc CVEs that the bundle
// controls. Debian's runc carries the fixes, so bare runc is not asked to
// fall for them; secrun refuses each before runc runs, on any delegate.
func TestE2ERuntimeCVEs(t *testing.T) {
	testenv.RequireContainers(t)
	bin := testenv.Build(t)
	env, _ := testenv.WriteConfig(t, "")
	for _, tc := range []struct {
		name        string
		edit        func(b *testenv.Bundle)
		rule, field string
	}{
		{"CVE-2024-21626 cwd in a leaked fd", func(b *testenv.Bundle) { b.Config["process"].(map[string]any)["cwd"] = "/proc/self/fd/7" }, "processPaths", "process.cwd"},
		{"CVE-2024-21626 cwd through an image symlink", func(b *testenv.Bundle) {
			os.Symlink("/proc/self/fd/7", filepath.Join(b.Dir, "rootfs", "work"))
			b.Config["process"].(map[string]any)["cwd"] = "/work"
		}, "processPaths", "process.cwd"},
		{"CVE-2019-5736 executing /proc/self/exe", func(b *testenv.Bundle) { b.Config["process"].(map[string]any)["args"] = []any{"/proc/self/exe"} }, "processPaths", "process.args[0]"},
		{"CVE-2019-19921 mount through a symlink onto /proc", func(b *testenv.Bundle) {
			os.Symlink("/proc", filepath.Join(b.Dir, "rootfs", "data"))
			appendList(b.Config, "mounts", map[string]any{"destination": "/data/sys", "type": "tmpfs", "source": "tmpfs"})
		}, "mounts", "mounts[7].destination"},
		{"rootfs that is the host's /", func(b *testenv.Bundle) { b.Config["root"] = map[string]any{"path": "/", "readonly": true} }, "mounts", "root.path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testenv.NewBundle(t, "/bin/true")
			tc.edit(b)
			b.Save(t)
			id := testenv.ContainerID(t)
			r := testenv.Run(t, env, filepath.Join(bin, "secrun-baseline"), "--root", testenv.StateRoot(t), "run", "--bundle", b.Dir, id)
			want := fmt.Sprintf("secrun: policy baseline (enforce) refused container %s: %s: %s: ", id, tc.rule, tc.field)
			if r.Code == 0 || !strings.HasPrefix(strings.TrimSpace(r.Stderr), want) {
				t.Fatalf("exit %d:\n%s\nwant a line starting %q", r.Code, r.Stderr, want)
			}
		})
	}
}

// TestE2EHostileExecProcess sends the process half of the corpus through
// `exec --process`, as `kubectl exec` reaches a running container.
func TestE2EHostileExecProcess(t *testing.T) {
	secrun, env, root, id := runningRestricted(t)
	for _, tc := range []struct {
		name  string
		proc  map[string]any
		field string
	}{
		{"cwd in a leaked fd", map[string]any{"args": []string{"/bin/true"}, "cwd": "/proc/self/fd/5"}, "processPaths: process.cwd"},
		{"exec of /proc/self/exe", map[string]any{"args": []string{"/proc/self/exe"}, "cwd": "/"}, "processPaths: process.args[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.proc["user"] = map[string]any{"uid": 1000, "gid": 1000}
			tc.proc["noNewPrivileges"] = true
			pf := filepath.Join(t.TempDir(), "process.json")
			raw, _ := json.Marshal(tc.proc)
			os.WriteFile(pf, raw, 0o600)
			r := testenv.Run(t, env, secrun, "--root", root, "exec", "--process", pf, id)
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.field) || !strings.Contains(r.Stderr, "fix:") {
				t.Fatalf("exec: exit %d: %s", r.Code, r.Stderr)
			}
		})
	}
}

// TestE2EHostileExecFlags: the exec command line sets the working
// directory and the command directly, and secrun cannot rewrite argv, so
// what reaches /proc is refused.
func TestE2EHostileExecFlags(t *testing.T) {
	secrun, env, root, id := runningRestricted(t)
	for _, args := range [][]string{
		{"exec", "--cwd", "/proc/self/fd/5", id, "/bin/true"},
		{"exec", "--cwd=/proc/self/fd/5", id, "/bin/true"},
		{"exec", id, "/proc/self/exe", "init"},
	} {
		r := testenv.Run(t, env, secrun, append([]string{"--root", root}, args...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "processPaths: process.") || !strings.Contains(r.Stderr, "fix:") {
			t.Errorf("%v: exit %d: %s", args, r.Code, r.Stderr)
		}
	}
	if r := testenv.Run(t, env, secrun, "--root", root, "exec", "--cwd", "/tmp", id, "/bin/true"); r.Code != 0 {
		t.Errorf("an ordinary exec --cwd was refused: %s", r.Stderr)
	}
}
