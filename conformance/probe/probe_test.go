//go:build linux

package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

// buildProbe compiles this package the way the suite ships it: static, so it
// can be the only file in a container's rootfs.
func buildProbe(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command(goTool, "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("open built probe: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("probe is dynamically linked; it must run in an empty rootfs")
		}
	}
	return out
}

func runProbeBinary(t *testing.T, probe string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, probe, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run probe: %v", err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func decodeReport(t *testing.T, out string) *report.Report {
	t.Helper()
	var r report.Report
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, out)
	}
	if r.Version != report.Version {
		t.Fatalf("report version %d, want %d", r.Version, report.Version)
	}
	return &r
}

// TestProbeCLI runs the probe directly on the host, restricted to ops that
// need no container and change nothing outside a temporary directory.
func TestProbeCLI(t *testing.T) {
	probe := buildProbe(t)
	scratch := t.TempDir()

	out, errOut, code := runProbeBinary(t, probe, "-scratch", scratch, "-sysctl", "kernel.ostype,no.such.sysctl",
		"seccomp.normal", "fs.scratch_write", "seccomp.keyctl", "proc.masked")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeReport(t, out)
	if r.UID != os.Getuid() || r.EUID != os.Geteuid() {
		t.Errorf("uid/euid = %d/%d, want %d/%d", r.UID, r.EUID, os.Getuid(), os.Geteuid())
	}
	if r.Sysctls["kernel.ostype"] != "Linux" {
		t.Errorf("sysctl kernel.ostype = %q, want Linux", r.Sysctls["kernel.ostype"])
	}
	if _, ok := r.SysctlErrors["no.such.sysctl"]; !ok {
		t.Errorf("missing sysctl not reported in sysctl_errors: %v", r.SysctlErrors)
	}
	for _, name := range []string{report.OpSeccompNormal, report.OpFSScratchWrite} {
		if o := r.Ops[name]; !o.OK {
			t.Errorf("%s = %+v, want OK", name, o)
		}
	}
	if _, ok := r.Ops[report.OpCapChown]; ok {
		t.Errorf("unselected op cap.chown was run")
	}
	if _, ok := r.Ops[report.PathOp(report.OpProcMasked, "/proc/timer_list")]; !ok {
		t.Errorf("proc.masked did not record per-path entries: %v", r.Ops)
	}
	if ents, err := os.ReadDir(scratch); err != nil || len(ents) != 0 {
		t.Errorf("probe left files in scratch: %v %v", ents, err)
	}

	if out, _, code := runProbeBinary(t, probe, "-list"); code != 0 || !strings.Contains(out, report.OpCapSysAdminMount+"\n") {
		t.Errorf("-list exit %d, output %q", code, out)
	}
	if _, errOut, code := runProbeBinary(t, probe, "cap.nope"); code != 2 || !strings.Contains(errOut, "unknown op") {
		t.Errorf("unknown op: exit %d, stderr %q; want 2 and a message", code, errOut)
	}
	if out, _, code := runProbeBinary(t, probe, "-report-euid"); code != 0 || out != fmt.Sprintf("euid=%d\n", os.Geteuid()) {
		t.Errorf("-report-euid: exit %d, output %q", code, out)
	}
}

var containerSeq atomic.Int64

// container is one runc bundle whose rootfs holds only the probe.
type container struct {
	t      *testing.T
	runc   string
	bundle string
	rootfs string
	spec   map[string]any
}

func newContainer(t *testing.T, runc, probe string) *container {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"etc", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// runc gives a tmpfs the mode of the directory it covers.
	if err := os.Mkdir(filepath.Join(rootfs, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	copyFile(t, probe, filepath.Join(rootfs, "probe"), 0o755)
	writeFile(t, filepath.Join(rootfs, "etc/passwd"), "root:x:0:0:root:/:/probe\nuser:x:1000:1000:user:/tmp:/probe\n")
	writeFile(t, filepath.Join(rootfs, "etc/group"), "root:x:0:\nuser:x:1000:\n")

	cmd := exec.Command(runc, "spec")
	cmd.Dir = bundle
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, runc: runc, bundle: bundle, rootfs: rootfs}
	if err := json.Unmarshal(raw, &c.spec); err != nil {
		t.Fatalf("decode runc spec: %v", err)
	}
	c.obj("process")["terminal"] = false
	c.obj("root")["readonly"] = false
	// uid=1234 makes the scratch mount foreign-owned so cap.fowner has a
	// target even when the container cannot chown.
	c.spec["mounts"] = append(c.spec["mounts"].([]any), map[string]any{
		"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
		"options": []any{"nosuid", "nodev", "mode=1777", "uid=1234", "gid=1234", "size=16m"},
	})
	return c
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// obj returns the spec object at a dotted path, creating it if missing.
func (c *container) obj(path string) map[string]any {
	m := c.spec
	for _, k := range strings.Split(path, ".") {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	return m
}

func (c *container) addCap(name string) {
	caps := c.obj("process.capabilities")
	for _, set := range []string{"bounding", "effective", "permitted", "inheritable", "ambient"} {
		list, _ := caps[set].([]any)
		caps[set] = append(list, name)
	}
}

// run starts the container with the given probe arguments and decodes its
// report.
func (c *container) run(args ...string) *report.Report {
	t := c.t
	t.Helper()
	c.obj("process")["args"] = append([]any{"/probe"}, toAny(args)...)
	b, err := json.MarshalIndent(c.spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(c.bundle, "config.json"), string(b))

	state := t.TempDir()
	id := fmt.Sprintf("secrun-probe-%d-%d", os.Getpid(), containerSeq.Add(1))
	t.Cleanup(func() {
		// Normally already gone; -f covers a container left by a timeout.
		_ = exec.Command(c.runc, "--root", state, "delete", "-f", id).Run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.runc, "--root", state, "run", "--bundle", c.bundle, id)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run %s: %v\nstderr: %s\nstdout: %s", id, err, errb.String(), out.String())
	}
	r := decodeReport(t, out.String())
	if testing.Verbose() {
		t.Logf("report:\n%s", out.String())
	}
	return r
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// wantOp checks one op's verdict and, when errno is non-empty, its errno.
func wantOp(t *testing.T, r *report.Report, name string, ok bool, errno string) {
	t.Helper()
	o, found := r.Ops[name]
	switch {
	case !found:
		t.Errorf("%s: not in report", name)
	case o.Skipped:
		t.Errorf("%s: skipped (%s), want an attempt", name, o.Detail)
	case o.OK != ok || (errno != "" && o.Errno != errno):
		t.Errorf("%s = ok:%t errno:%q (%s); want ok:%t errno:%q", name, o.OK, o.Errno, o.Detail, ok, errno)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func hostBounding(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &report.Report{}
	if err := parseStatus(f, r); err != nil {
		t.Fatal(err)
	}
	return r.Caps.Bounding
}

// TestRunc starts real containers with runc and checks that the kernel
// enforces what the OCI spec asks for.
func TestRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start runc containers")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	probe := buildProbe(t)

	t.Run("default caps", func(t *testing.T) {
		c := newContainer(t, runc, probe)
		r := c.run("-sysctl", "net.ipv4.ip_unprivileged_port_start", "all")

		wantCaps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
		for name, set := range map[string][]string{"effective": r.Caps.Effective, "permitted": r.Caps.Permitted, "bounding": r.Caps.Bounding} {
			if !sameSet(set, wantCaps) {
				t.Errorf("%s caps = %v, want %v", name, set, wantCaps)
			}
		}
		if r.UID != 0 || r.NoNewPrivs != 1 || r.Seccomp != 0 || r.Hostname != "runc" {
			t.Errorf("uid/nnp/seccomp/hostname = %d/%d/%d/%q, want 0/1/0/runc", r.UID, r.NoNewPrivs, r.Seccomp, r.Hostname)
		}

		wantOp(t, r, report.OpCapChown, false, "EPERM")
		wantOp(t, r, report.OpCapDacOverride, false, "EACCES")
		wantOp(t, r, report.OpCapDacReadSearch, false, "EPERM")
		wantOp(t, r, report.OpCapFowner, false, "EPERM")
		wantOp(t, r, report.OpCapFsetid, false, "")
		wantOp(t, r, report.OpCapSetuid, false, "EPERM")
		wantOp(t, r, report.OpCapSetgid, false, "EPERM")
		wantOp(t, r, report.OpCapSetpcap, false, "EPERM")
		wantOp(t, r, report.OpCapNetBindService, true, "")
		wantOp(t, r, report.OpCapNetRaw, false, "EPERM")
		wantOp(t, r, report.OpCapNetAdmin, false, "EPERM")
		wantOp(t, r, report.OpCapSysChroot, false, "EPERM")
		wantOp(t, r, report.OpCapMknod, false, "EPERM")
		wantOp(t, r, report.OpCapSysAdminMount, false, "EPERM")
		wantOp(t, r, report.OpCapSysAdminHostname, false, "EPERM")
		wantOp(t, r, report.OpCapSysTime, false, "EPERM")
		wantOp(t, r, report.OpCapSysPtrace, false, "EPERM")
		wantOp(t, r, report.OpCapSetfcap, false, "EPERM")
		wantOp(t, r, report.OpFSRootfsWrite, true, "")
		wantOp(t, r, report.OpFSScratchWrite, true, "")
		wantOp(t, r, report.OpSeccompKeyctl, true, "EOPNOTSUPP")
		wantOp(t, r, report.OpSeccompNormal, true, "")
		wantOp(t, r, report.OpPrivSysRW, false, "")
		wantOp(t, r, report.PathOp(report.OpProcReadonly, "/proc/sys"), false, "EROFS")
		if o := r.Ops[report.OpCapKill]; !o.Skipped {
			t.Errorf("cap.kill = %+v; without CAP_SETUID its prerequisite must fail and be reported as skipped", o)
		}
		// runc masks these with /dev/null or an empty tmpfs; absent is fine.
		for _, p := range []string{"/proc/keys", "/proc/timer_list", "/sys/firmware"} {
			if o := r.Ops[report.PathOp(report.OpProcMasked, p)]; o.OK {
				t.Errorf("%s readable in a default container: %+v", p, o)
			}
		}
		if _, ok := r.Sysctls["net.ipv4.ip_unprivileged_port_start"]; !ok {
			t.Errorf("requested sysctl missing: %v %v", r.Sysctls, r.SysctlErrors)
		}
	})

	t.Run("readonly rootfs", func(t *testing.T) {
		c := newContainer(t, runc, probe)
		c.obj("root")["readonly"] = true
		r := c.run(report.OpFSRootfsWrite, report.OpFSScratchWrite)
		wantOp(t, r, report.OpFSRootfsWrite, false, "EROFS")
		wantOp(t, r, report.OpFSScratchWrite, true, "")
	})

	t.Run("CAP_NET_ADMIN added", func(t *testing.T) {
		if !report.HasCap(hostBounding(t), "CAP_NET_ADMIN") {
			t.Skip("host bounding set lacks CAP_NET_ADMIN")
		}
		c := newContainer(t, runc, probe)
		c.addCap("CAP_NET_ADMIN")
		r := c.run("cap.*")
		if !report.HasCap(r.Caps.Effective, "CAP_NET_ADMIN") {
			t.Fatalf("effective caps %v lack CAP_NET_ADMIN", r.Caps.Effective)
		}
		wantOp(t, r, report.OpCapNetAdmin, true, "")
		wantOp(t, r, report.OpCapNetRaw, false, "EPERM")
		wantOp(t, r, report.OpCapChown, false, "EPERM")
	})

	t.Run("seccomp filter", func(t *testing.T) {
		c := newContainer(t, runc, probe)
		c.obj("linux")["seccomp"] = map[string]any{
			"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": []any{map[string]any{
				"names": []any{"keyctl", "mount"}, "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
			}},
		}
		r := c.run("seccomp.*")
		if r.Seccomp != 2 {
			t.Errorf("seccomp mode = %d, want 2 (filter)", r.Seccomp)
		}
		wantOp(t, r, report.OpSeccompKeyctl, false, "EPERM")
		wantOp(t, r, report.OpSeccompMount, false, "EPERM")
		wantOp(t, r, report.OpSeccompPtrace, true, "ESRCH")
		wantOp(t, r, report.OpSeccompNormal, true, "")
	})

	t.Run("no_new_privs", func(t *testing.T) {
		for _, nnp := range []bool{true, false} {
			t.Run(fmt.Sprint(nnp), func(t *testing.T) {
				c := newContainer(t, runc, probe)
				var sfs unix.Statfs_t
				if err := unix.Statfs(c.rootfs, &sfs); err != nil {
					t.Fatal(err)
				}
				if !nnp && sfs.Flags&unix.ST_NOSUID != 0 {
					t.Skip("bundle directory is on a nosuid mount; setuid cannot work there")
				}
				copyFile(t, probe, filepath.Join(c.rootfs, "probe-suid"), 0o755|os.ModeSetuid)
				c.obj("process")["user"] = map[string]any{"uid": 1000, "gid": 1000}
				c.obj("process")["noNewPrivileges"] = nnp
				r := c.run(report.OpNNPSetuid, report.OpFSRootfsWrite)
				if r.EUID != 1000 || r.NoNewPrivs != map[bool]int{true: 1, false: 0}[nnp] {
					t.Errorf("euid/nnp = %d/%d", r.EUID, r.NoNewPrivs)
				}
				wantOp(t, r, report.OpFSRootfsWrite, false, "EACCES")
				wantOp(t, r, report.OpNNPSetuid, !nnp, "")
				wantDetail := map[bool]string{true: "euid=1000", false: "euid=0"}[nnp]
				if d := r.Ops[report.OpNNPSetuid].Detail; !strings.HasPrefix(d, wantDetail) {
					t.Errorf("nnp.setuid detail %q, want prefix %q", d, wantDetail)
				}
			})
		}
	})
}
