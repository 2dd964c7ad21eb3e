// Package seccompagent is the seccomp user-notification agent: runc hands
// it each container's notify fd (linux.seccomp.listenerPath, runc ≥ 1.1),
// and it answers every call the container's profile denies as secrun's
// listenerMetadata says (record: let it run; explain: the profile's
// errno), recording each syscall per container under a state directory.
//
// What the kernel does when the agent goes away: closing the last
// reference to a notify fd (the agent exits, is killed, or stops serving a
// container) answers every notification still pending with ENOSYS, and
// every later call that hits a NOTIFY rule gets ENOSYS at once, since the
// filter has no listener any more (kernel/seccomp.c
// seccomp_notify_detach, seccomp_do_user_notification). A container never
// hangs on a dead agent; in explain mode it sees ENOSYS instead of the
// profile's errno, in record mode the calls stop working. runc closes its
// own copies of the fd once the agent has it, so the agent holds the only
// one, and a restarted agent cannot get it back: such containers stay
// without a listener until they are restarted.
package seccompagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/spec"
)

// Config is how the agent runs.
type Config struct {
	// Socket is the unix socket runc connects to (listenerPath).
	Socket string
	// StateDir holds one record per container.
	StateDir string
	// Log receives one line per event worth an admin's attention.
	Log io.Writer
	// FlushInterval bounds how long a count may stay unwritten; a
	// syscall seen for the first time is written at once. Default 1s.
	FlushInterval time.Duration
}

// Agent serves notify fds.
type Agent struct {
	cfg Config
	ln  *net.UnixListener

	mu      sync.Mutex
	entries map[string]*entry

	stopR, stopW *os.File // closing stopW wakes every listener
	wake         chan struct{}
	wg           sync.WaitGroup
}

// maxStateSize bounds what a connection may send; runc's container
// process state is a few KiB.
const maxStateSize = 1 << 20

// Listen opens the socket and the state directory. A socket file whose
// agent is gone is replaced; one that answers is another agent's, and
// Listen refuses to take it over.
func Listen(cfg Config) (*Agent, error) {
	if cfg.Socket == "" || cfg.StateDir == "" {
		return nil, errors.New("seccomp agent: --socket and --state are required")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("seccomp agent: state directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o700); err != nil {
		return nil, fmt.Errorf("seccomp agent: socket directory: %w", err)
	}
	if fi, err := os.Lstat(cfg.Socket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("seccomp agent: %s exists and is not a socket; remove it or choose another --socket", cfg.Socket)
		}
		if policy.AgentReachable(cfg.Socket) == nil {
			return nil, fmt.Errorf("seccomp agent: another agent listens on %s", cfg.Socket)
		}
		if err := os.Remove(cfg.Socket); err != nil {
			return nil, fmt.Errorf("seccomp agent: remove the stale socket: %w", err)
		}
	}
	// Only root (runc) may hand fds over: a container that could connect
	// could fill its record with lies.
	old := unix.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Socket, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("seccomp agent: listen: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	r, w, err := os.Pipe()
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &Agent{cfg: cfg, ln: ln, entries: map[string]*entry{}, stopR: r, stopW: w, wake: make(chan struct{}, 1)}, nil
}

// Serve accepts runc's connections until ctx ends, then stops every
// listener, writes every record and returns. Stopping closes the notify
// fds, so what the containers call afterwards gets ENOSYS (see the
// package comment).
func (a *Agent) Serve(ctx context.Context) error {
	flushed := make(chan struct{})
	go a.flusher(ctx, flushed)
	go func() {
		<-ctx.Done()
		a.ln.Close()
	}()
	var err error
	for {
		c, aerr := a.ln.AcceptUnix()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("seccomp agent: accept: %w", aerr)
			}
			break
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.handle(c)
		}()
	}
	a.stopW.Close()
	a.wg.Wait()
	<-flushed
	a.flushAll()
	a.stopR.Close()
	return err
}

func (a *Agent) logf(format string, args ...any) {
	fmt.Fprintf(a.cfg.Log, "seccomp-agent: "+format+"\n", args...)
}

// handle reads one container process state and its fd, and serves the
// fd until the container's processes are gone or the agent stops.
func (a *Agent) handle(c *net.UnixConn) {
	state, fd, err := receive(c)
	c.Close()
	if err != nil {
		a.logf("%v", err)
		return
	}
	if fd < 0 {
		// secrun's reachability probe: a connect and nothing else.
		return
	}
	e, meta, err := a.open(state)
	if err != nil {
		unix.Close(fd)
		a.logf("%v", err)
		return
	}
	a.logf("container %s: serving its notify fd (%s, %s)", state.State.ID, meta.Mode, meta.Profile)
	a.serveFd(fd, e, meta)
	unix.Close(fd)
	a.close(e)
}

// receive reads what runc sends (libcontainer/process_linux.go
// sendContainerProcessState): the JSON state in one sendmsg with the fd
// as SCM_RIGHTS.
func receive(c *net.UnixConn) (*specs.ContainerProcessState, int, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var body []byte
	fd := -1
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		n, oobn = max(n, 0), max(oobn, 0)
		body = append(body, buf[:n]...)
		if oobn > 0 {
			fds, perr := rights(oob[:oobn])
			for _, f := range fds {
				if fd < 0 {
					fd = f
				} else {
					unix.Close(f)
				}
			}
			if perr != nil && fd < 0 {
				return nil, -1, fmt.Errorf("connection: %w", perr)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0 && oobn == 0) {
			break
		}
		// runc 1.1 leaves its end open while its create runs (it closes
		// only a dup of the socket), so the state ends where its JSON
		// does, not at a hang-up.
		if err == nil && fd >= 0 && json.Valid(body) {
			break
		}
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			return nil, -1, fmt.Errorf("connection: %w", err)
		}
		if len(body) > maxStateSize {
			if fd >= 0 {
				unix.Close(fd)
			}
			return nil, -1, fmt.Errorf("connection: more than %d bytes of state", maxStateSize)
		}
	}
	if len(body) == 0 && fd < 0 {
		return nil, -1, nil
	}
	if fd < 0 {
		return nil, -1, errors.New("connection: a container state without a notify fd")
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(body, &st); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("connection: container process state: %w", err)
	}
	idx := -1
	for i, n := range st.Fds {
		if n == specs.SeccompFdName {
			idx = i
		}
	}
	if idx != 0 {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("container %s: the state names no %s as its only fd (fds %v)", st.State.ID, specs.SeccompFdName, st.Fds)
	}
	unix.CloseOnExec(fd)
	return &st, fd, nil
}

func rights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) == 0 {
		return nil, errors.New("no SCM_RIGHTS in the control message")
	}
	return fds, nil
}

// unknownMeta answers a listener whose metadata is not secrun's: fail
// closed, as the profile's most common denial.
var unknownMeta = spec.AgentMetadata{Mode: "unknown", Default: spec.Denial{Action: specs.ActErrno, Errno: uint(unix.EPERM)}}

// open finds or starts the record of the state's container.
func (a *Agent) open(st *specs.ContainerProcessState) (*entry, *spec.AgentMetadata, error) {
	id := st.State.ID
	path, err := RecordPath(a.cfg.StateDir, id)
	if err != nil {
		return nil, nil, err
	}
	meta, err := spec.ParseAgentMetadata(st.Metadata)
	if err != nil {
		a.logf("container %s: %v; every notified call gets EPERM", id, err)
		m := unknownMeta
		meta = &m
	}
	now := time.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[id]
	if e == nil {
		e = &entry{path: path}
		if old, err := Load(path); err == nil && old.Bundle == st.State.Bundle {
			// The same container, seen before this agent started (or
			// through an exec after a restart): keep counting.
			e.rec = *old
			e.rec.Ended = nil
		} else {
			e.rec = Record{Container: id, Bundle: st.State.Bundle, Started: now}
		}
		a.entries[id] = e
	}
	e.mu.Lock()
	ann := st.State.Annotations
	e.rec.Namespace = first(ann, "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace")
	e.rec.Pod = first(ann, "io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name")
	e.rec.ContainerName = first(ann, "io.kubernetes.cri.container-name", "io.kubernetes.container.name")
	e.rec.Mode, e.rec.Policy, e.rec.Profile, e.rec.Arch, e.rec.Capabilities = meta.Mode, meta.Policy, meta.Profile, meta.Arch, meta.Capabilities
	e.rec.Listeners++
	e.rec.Updated = now
	e.dirty = true
	e.open++
	e.mu.Unlock()
	a.poke()
	return e, meta, nil
}

func first(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

// close marks one listener of e done; the last one ends the record.
func (a *Agent) close(e *entry) {
	e.mu.Lock()
	e.open--
	last := e.open == 0
	e.mu.Unlock()
	if !last {
		return
	}
	// A new listener for the same container may have come in between;
	// it keeps the entry.
	a.mu.Lock()
	e.mu.Lock()
	if e.open == 0 && a.entries[e.rec.Container] == e {
		delete(a.entries, e.rec.Container)
	}
	e.mu.Unlock()
	a.mu.Unlock()
	if err := e.flush(); err != nil {
		a.logf("%v", err)
	}
}

// poke asks the flusher to write soon (a syscall seen for the first
// time, a new listener).
func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) flusher(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(a.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.wake:
		}
		a.flushAll()
	}
}

func (a *Agent) flushAll() {
	a.mu.Lock()
	es := make([]*entry, 0, len(a.entries))
	for _, e := range a.entries {
		es = append(es, e)
	}
	a.mu.Unlock()
	for _, e := range es {
		if err := e.flush(); err != nil {
			a.logf("%v", err)
		}
	}
}
