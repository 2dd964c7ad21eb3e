package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// runJob is one container run.
type runJob struct {
	// name is unique per suite run; it names the bundle directory.
	name    string
	spec    *specs.Spec
	runtime string
	env     []string
	// sysctls are the sysctls the container sets: the run samples them
	// outside the container, before and after.
	sysctls map[string]string
	// joinOuter puts the container into the namespaces the suite watches.
	joinOuter bool
	// timeout, when set, replaces Options.Timeout (runs started many at
	// once share the CPUs).
	timeout time.Duration
}

// Sysctls are sampled in a namespace the suite owns. For a normal run
// the runtime itself is started in fresh network and IPC namespaces (the
// wrapper below), so a runtime that failed to isolate the container
// would write there, never to the host; a twin that must leak joins a
// holder's namespaces by path instead, because runc refuses net.*
// sysctls in the namespace it runs in. Either way the namespace is
// preset to a value other than the requested one where that is safe
// (presettable), so that a leak changes something visible.
const outerScript = `
for kv in $SECRUN_CONFORMANCE_SYSCTLS; do
	p=${kv%%=*}
	alt=${kv#*=}
	if [ -n "$alt" ]; then
		echo "$alt" > "/proc/sys/$p" || exit 121
	fi
	printf 'before %s %s\n' "$p" "$(cat "/proc/sys/$p")" >&3
done
rc=0
if [ "$SECRUN_CONFORMANCE_HOLD" = 1 ]; then
	echo ready
	read -r _ || true
else
	"$@"
	rc=$?
fi
for kv in $SECRUN_CONFORMANCE_SYSCTLS; do
	p=${kv%%=*}
	printf 'after %s %s\n' "$p" "$(cat "/proc/sys/$p")" >&3
done
exit $rc
`

func sysctlPath(name string) string { return strings.ReplaceAll(name, ".", "/") }

func outerEnv(sysctls map[string]string, hold bool) []string {
	var kv []string
	for _, n := range sortedKeys(sysctls) {
		alt, _ := altValue(n, sysctls[n])
		kv = append(kv, sysctlPath(n)+"="+alt)
	}
	h := "0"
	if hold {
		h = "1"
	}
	return []string{"SECRUN_CONFORMANCE_SYSCTLS=" + strings.Join(kv, " "), "SECRUN_CONFORMANCE_HOLD=" + h}
}

func parseSamples(r io.Reader) map[string]sample {
	out := map[string]sample{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		when, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		p, v, _ := strings.Cut(rest, " ")
		name := strings.ReplaceAll(p, "/", ".")
		s := out[name]
		switch when {
		case "before":
			s.before = v
		case "after":
			s.after = v
		}
		out[name] = s
	}
	return out
}

func readHostSysctls(sysctls map[string]string) map[string]string {
	out := map[string]string{}
	for n := range sysctls {
		b, err := os.ReadFile("/proc/sys/" + sysctlPath(n))
		if err != nil {
			out[n] = "unreadable: " + err.Error()
			continue
		}
		out[n] = strings.TrimSpace(string(b))
	}
	return out
}

// holder is a shell in fresh network and IPC namespaces that keeps them
// alive while a twin container joins them.
type holder struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	samples *os.File
}

func startHolder(dir string, sysctls map[string]string) (*holder, error) {
	samples, err := os.Create(filepath.Join(dir, "outer-samples"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", outerScript, "holder")
	cmd.Env = append(os.Environ(), outerEnv(sysctls, true)...)
	cmd.ExtraFiles = []*os.File{samples}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC, Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		samples.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		samples.Close()
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		samples.Close()
		return nil, fmt.Errorf("start the namespace holder: %w", err)
	}
	h := &holder{cmd: cmd, stdin: stdin, samples: samples}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		h.stop()
		return nil, fmt.Errorf("the namespace holder did not start (read %q): %v", line, err)
	}
	return h, nil
}

func (h *holder) stop() map[string]sample {
	h.stdin.Close()
	_ = h.cmd.Wait()
	defer h.samples.Close()
	if _, err := h.samples.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	return parseSamples(h.samples)
}

// joinNamespaces points the spec's network and IPC namespaces at pid's.
func joinNamespaces(s *specs.Spec, pid int) {
	want := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: fmt.Sprintf("/proc/%d/ns/net", pid),
		specs.IPCNamespace:     fmt.Sprintf("/proc/%d/ns/ipc", pid),
	}
	for i, ns := range s.Linux.Namespaces {
		if p, ok := want[ns.Type]; ok {
			s.Linux.Namespaces[i].Path = p
			delete(want, ns.Type)
		}
	}
	for t, p := range want {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: p})
	}
}

// run starts one container and returns what it showed. The bundle stays
// in dir for the caller to keep or remove.
func (s *suite) run(ctx context.Context, j *runJob) (obs *observation, dir string) {
	obs = &observation{exit: -1}
	dir = filepath.Join(s.work, "runs", j.name)
	fail := func(err error) (*observation, string) {
		obs.runErr = err
		return obs, dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := s.makeRootfs(rootfs); err != nil {
		return fail(err)
	}
	sp, err := spec.Clone(j.spec)
	if err != nil {
		return fail(err)
	}
	sp.Root.Path = rootfs

	var hold *holder
	if len(j.sysctls) > 0 && j.joinOuter {
		if hold, err = startHolder(dir, j.sysctls); err != nil {
			return fail(err)
		}
		joinNamespaces(sp, hold.cmd.Process.Pid)
	}
	raw, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		return fail(err)
	}

	id := fmt.Sprintf("secrun-conformance-%d-%d", os.Getpid(), s.seq.Add(1))
	args := []string{"--root", s.stateRoot, "--log", filepath.Join(dir, "runtime-log.json"), "--log-format", "json", "run", "--bundle", dir, id}
	var cmd *exec.Cmd
	var samples *os.File
	if len(j.sysctls) > 0 && !j.joinOuter {
		samples, err = os.Create(filepath.Join(dir, "outer-samples"))
		if err != nil {
			return fail(err)
		}
		defer samples.Close()
		cmd = exec.Command("/bin/sh", append([]string{"-c", outerScript, "wrapper", j.runtime}, args...)...)
		cmd.Env = append(append(os.Environ(), j.env...), outerEnv(j.sysctls, false)...)
		cmd.ExtraFiles = []*os.File{samples}
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC, Setpgid: true}
	} else {
		cmd = exec.Command(j.runtime, args...)
		cmd.Env = append(os.Environ(), j.env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// Files, not pipes: nothing the container leaves behind can keep a
	// pipe open and hang the suite.
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return fail(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return fail(err)
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr

	hostBefore := readHostSysctls(j.sysctls)
	if err := cmd.Start(); err != nil {
		if hold != nil {
			hold.stop()
		}
		return fail(fmt.Errorf("start %s: %w", j.runtime, err))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := s.opts.Timeout
	if j.timeout > 0 {
		timeout = j.timeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-timer.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		obs.runErr = fmt.Errorf("timed out after %s", timeout)
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		obs.runErr = ctx.Err()
	}
	// runc run removes its container when the process exits; a timeout
	// or a crash may leave it behind, and then its state directory is
	// still there. Only then is delete run: under emulation every runtime
	// invocation costs a noticeable fraction of a second, and the
	// validity mode makes hundreds of runs. (runc and crun keep one
	// directory per container ID under --root: runc's
	// libcontainer/factory_linux.go, crun's libcrun/status.c.)
	if _, err := os.Lstat(filepath.Join(s.stateRoot, id)); err == nil || !errors.Is(err, os.ErrNotExist) {
		_ = exec.Command(s.deleteWith(j.runtime), "--root", s.stateRoot, "delete", "-f", id).Run()
	}

	hostAfter := readHostSysctls(j.sysctls)
	if len(j.sysctls) > 0 {
		obs.host = map[string]sample{}
		for n := range j.sysctls {
			obs.host[n] = sample{before: hostBefore[n], after: hostAfter[n]}
		}
		switch {
		case hold != nil:
			obs.outer = hold.stop()
		case samples != nil:
			if _, err := samples.Seek(0, io.SeekStart); err == nil {
				obs.outer = parseSamples(samples)
			}
		}
	}

	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		obs.exit = 0
	case errors.As(waitErr, &exitErr):
		obs.exit = exitErr.ExitCode()
	case obs.runErr == nil:
		obs.runErr = waitErr
	}
	out, _ := os.ReadFile(stdout.Name())
	errb, _ := os.ReadFile(stderr.Name())
	obs.stdout, obs.stderr = string(out), string(errb)
	obs.containerID = id
	if obs.exit == 121 && len(j.sysctls) > 0 {
		obs.runErr = fmt.Errorf("could not preset sysctls in the suite's scratch namespace")
	}
	rep, err := decodeReport(out)
	if err != nil && obs.runErr == nil {
		obs.runErr = err
	}
	obs.rep = rep
	return obs, dir
}

// deleteWith is the binary that cleans a container up: secrun passes
// delete through to its delegate, which shares the state root.
func (s *suite) deleteWith(runtime string) string {
	if s.kind == kindSecrun {
		return s.delegate
	}
	return runtime
}
