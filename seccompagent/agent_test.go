package seccompagent

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dialPair is a connected unix stream pair, as runc's connection to the
// agent is.
func dialPair(t *testing.T) (client, server *net.UnixConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// TestReceive reads what runc 1.1 sends: the state and the fd in one
// sendmsg, with runc's end left open.
func TestReceive(t *testing.T) {
	c, s := dialPair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	st := specs.ContainerProcessState{Version: specs.Version, Fds: []string{specs.SeccompFdName}, Pid: 42, Metadata: "m",
		State: specs.State{ID: "c1", Bundle: "/b", Annotations: map[string]string{"io.kubernetes.cri.sandbox-name": "web"}}}
	b, _ := json.Marshal(st)
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(int(r.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var got *specs.ContainerProcessState
	var fd int
	go func() {
		defer close(done)
		got, fd, err = receive(s)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("receive waited for a hang-up runc never sends")
	}
	if err != nil || got.State.ID != "c1" || got.Metadata != "m" || fd < 0 {
		t.Fatalf("receive: %+v, fd %d, %v", got, fd, err)
	}
	unix.Close(fd)
}

func TestReceiveProbeAndGarbage(t *testing.T) {
	c, s := dialPair(t)
	c.Close()
	if st, fd, err := receive(s); st != nil || fd != -1 || err != nil {
		t.Errorf("an empty connection (secrun's probe): %v %d %v", st, fd, err)
	}
	c, s = dialPair(t)
	c.Write([]byte(`{"version":"1"}`))
	c.Close()
	if _, _, err := receive(s); err == nil || !strings.Contains(err.Error(), "without a notify fd") {
		t.Errorf("a state without an fd: %v", err)
	}
}

func TestRecordPath(t *testing.T) {
	if _, err := RecordPath("/d", "ok-id_1.2"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 300)} {
		if _, err := RecordPath("/d", bad); err == nil {
			t.Errorf("id %q names a record file", bad)
		}
	}
}

func TestSummaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []uint64
		want string
	}{
		{"clone", []uint64{unix.CLONE_NEWUSER | unix.CLONE_NEWNS | uint64(unix.SIGCHLD)}, "flags=CLONE_NEWNS|CLONE_NEWUSER"},
		{"unshare", []uint64{unix.CLONE_NEWNET}, "flags=CLONE_NEWNET"},
		{"socket", []uint64{unix.AF_VSOCK, unix.SOCK_STREAM, 0}, "family=AF_VSOCK type=1 protocol=0"},
		{"personality", []uint64{0x0040000}, "persona=PER_LINUX+ADDR_NO_RANDOMIZE"},
		{"personality", []uint64{0xffffffff}, "persona=query (0xffffffff)"},
		{"getpid", nil, ""},
	} {
		if got := summarize("SCMP_ARCH_X86_64", tc.name, tc.args); got != tc.want {
			t.Errorf("%s%v = %q, want %q", tc.name, tc.args, got, tc.want)
		}
	}
	if i, _ := keyArg("SCMP_ARCH_S390X", "clone"); i != 1 {
		t.Error("s390x clone flags are the second argument")
	}
}
