package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one daemon of the cluster, its output in logs/<name>.log. With
// restart set it is started again whenever it exits while the cluster is
// up: containerd, which the installer DaemonSet restarts by killing it,
// as systemd would start it again on a node.
type proc struct {
	name    string
	argv    []string
	env     []string
	dir     string
	logPath string
	restart bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	stopping bool
	restarts int
	onStart  func(pid int)
	lastErr  string
}

func (p *proc) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== %s start %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemons die with the process that owns the cluster, whatever
	// kills it; Down stops them in order when it can.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	if p.onStart != nil {
		p.onStart(cmd.Process.Pid)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.lastErr = fmt.Sprint(err)
		again := p.restart && !p.stopping
		if again {
			p.restarts++
		}
		p.mu.Unlock()
		close(exited)
		if again {
			if err := p.start(); err != nil {
				p.mu.Lock()
				p.lastErr = err.Error()
				p.mu.Unlock()
			}
		}
	}()
	return nil
}

// running reports whether the process is up, and if not how it ended.
func (p *proc) running() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false, p.lastErr
	default:
		return true, ""
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs; only this
// process, by its pid.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// result is a finished command.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string { return strings.TrimSpace(r.Stdout + "\n" + r.Stderr) }

// run runs a command to completion with a deadline.
func run(timeout time.Duration, env []string, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		r.Stderr += fmt.Sprintf("\n(%s timed out after %v)", filepath.Base(name), timeout)
		r.Code = -1
	} else if err != nil && r.Code == 0 {
		r.Code, r.Stderr = -1, r.Stderr+"\n"+err.Error()
	}
	return r
}
