// Command k8s-cluster keeps one of the Kubernetes test clusters up for
// other tests (the conformance suite's Kubernetes target) to use, and
// takes it down again, checking the host is as it was:
//
//	go run ./integration/kubernetes/cmd/k8s-cluster up [-row containerd-2.x]
//	go run ./integration/kubernetes/cmd/k8s-cluster down [-row containerd-2.x]
//
// scripts/kubernetes/cluster.sh builds the tools first and wraps these.
// `up` starts a detached supervisor (this program's `serve`), waits until
// the node is Ready and prints KUBECONFIG; `down` stops the supervisor by
// its pid, which tears the cluster down.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secrun/secrun/integration/kubernetes/cluster"
)

const base = "/tmp/secrun-k8s"

func main() {
	cluster.NamespaceHelper()
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	row := fs.String("row", "containerd-2.x", "containerd-2.x or containerd-1.6")
	repo := fs.String("repo", ".", "repository root")
	fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*repo)
	if err != nil {
		fail(err)
	}
	// Not the test's directory: `make test-kubernetes` may run meanwhile.
	dir := filepath.Join(base, "keep-"+*row)
	switch os.Args[1] {
	case "up":
		fail(up(abs, *row, dir))
	case "serve":
		fail(serve(abs, *row, dir))
	case "down":
		fail(down(dir))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: k8s-cluster up|down [-row containerd-2.x|containerd-1.6] [-repo DIR]")
	os.Exit(2)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-cluster:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func pidFile(dir string) string   { return dir + ".pid" }
func readyFile(dir string) string { return dir + ".ready" }
func resultFile(dir string) string {
	return dir + ".result"
}

func running(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func readPid(dir string) int {
	b, _ := os.ReadFile(pidFile(dir))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func up(repo, row, dir string) error {
	if pid := readPid(dir); running(pid) {
		if b, err := os.ReadFile(readyFile(dir)); err == nil {
			fmt.Printf("already up (supervisor pid %d)\n%s", pid, b)
			return nil
		}
		return fmt.Errorf("a supervisor (pid %d) is starting or stuck; see %s.log, or run down", pid, dir)
	}
	os.Remove(readyFile(dir))
	os.Remove(resultFile(dir))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(dir + ".log")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve", "-row", row, "-repo", repo)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the supervisor outlives this command and the
	// shell that ran it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "k8s-cluster: supervisor pid %d, progress in %s.log\n", cmd.Process.Pid, dir)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			tail, _ := os.ReadFile(dir + ".log")
			return fmt.Errorf("the supervisor exited (%v) before the cluster was up:\n%s", err, tailLines(string(tail), 30))
		case <-time.After(time.Second):
		}
		if b, err := os.ReadFile(readyFile(dir)); err == nil {
			fmt.Print(string(b))
			return nil
		}
	}
	return errors.New("the cluster was not up within 15 minutes; see " + dir + ".log")
}

func serve(repo, row, dir string) error {
	tools, err := cluster.FindTools(repo)
	if err != nil {
		return err
	}
	r, err := pickRow(tools, row)
	if err != nil {
		return err
	}
	before, err := cluster.SnapshotHost()
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Printf("%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	c, err := cluster.Up(cluster.Options{Repo: repo, Tools: tools, Row: r, Dir: dir,
		Out: filepath.Join(repo, "_out", "kubernetes", "cluster-"+row), Capture: true, Log: logf})
	if err == nil {
		ready := fmt.Sprintf("KUBECONFIG=%s\n# row %s, node %s, API server %s\n# containerd socket %s, config %s\n# secrun config %s, audit log %s\n",
			c.Kubeconfig, row, cluster.NodeName, c.Server, c.ContainerdSocket, c.ContainerdConfig, c.SecrunConfigPath, c.AuditLog)
		if err = os.WriteFile(readyFile(dir), []byte(ready), 0o644); err == nil {
			logf("cluster up; waiting for SIGTERM (k8s-cluster down)")
			<-sigs
		}
	}
	derr := c.Down(false)
	os.Remove(readyFile(dir))
	after, serr := cluster.SnapshotHost()
	var res []string
	if serr != nil {
		res = append(res, serr.Error())
	} else {
		res = append(res, before.Diff(after)...)
	}
	if derr != nil {
		res = append(res, "tear down: "+derr.Error())
	}
	b, _ := json.Marshal(map[string]any{"upError": fmt.Sprint(err), "problems": res})
	os.WriteFile(resultFile(dir), b, 0o644)
	os.Remove(pidFile(dir))
	if err != nil {
		return err
	}
	if len(res) > 0 {
		return errors.New(strings.Join(res, "\n"))
	}
	logf("cluster down; the host is as it was")
	return nil
}

func down(dir string) error {
	pid := readPid(dir)
	if !running(pid) {
		os.Remove(pidFile(dir))
		return fmt.Errorf("no cluster supervisor is running for %s", dir)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for i := 0; running(pid); i++ {
		if i > 240 {
			return fmt.Errorf("supervisor pid %d still running after 2 minutes; see %s.log", pid, dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b, err := os.ReadFile(resultFile(dir))
	if err != nil {
		return fmt.Errorf("the supervisor left no result: %w; see %s.log", err, dir)
	}
	var res struct {
		Problems []string `json:"problems"`
	}
	json.Unmarshal(b, &res)
	if len(res.Problems) > 0 {
		return errors.New("cluster down, but:\n" + strings.Join(res.Problems, "\n"))
	}
	fmt.Println("cluster down; the host's sysctls, iptables rules, cgroups and kubelet paths are as they were")
	return nil
}

func pickRow(tools *cluster.Tools, name string) (cluster.Row, error) {
	for _, r := range cluster.Rows(tools) {
		if r.Name == name {
			return r, nil
		}
	}
	return cluster.Row{}, fmt.Errorf("no row %q (containerd-2.x, containerd-1.6)", name)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
