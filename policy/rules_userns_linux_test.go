package policy

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// TestReadMappingsPastOnePage: the kernel hands out uid_map a page at a
// time, so a namespace with more ranges than fit in one page (up to 340)
// has lines a single read never sees. Here the last of 300 ranges maps
// host root, and the reader must find it. (The kernel takes a map in one
// write of less than a page, so the ids are short to write; it reads
// each back padded to ten digits, over two pages.)
func TestReadMappingsPastOnePage(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("writing 300 uid ranges needs root")
		}
		t.Skip("writing 300 uid ranges needs root")
	}
	const n = 300
	var m []syscall.SysProcIDMap
	for i := 0; i < n-1; i++ {
		m = append(m, syscall.SysProcIDMap{ContainerID: i, HostID: 100_000 + i, Size: 1})
	}
	m = append(m, syscall.SysProcIDMap{ContainerID: n - 1, HostID: 0, Size: 1})
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m,
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100_000, Size: 1}}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in a user namespace with %d ranges: %v", n, err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	path := fmt.Sprintf("/proc/%d/uid_map", cmd.Process.Pid)
	if st, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if b, _ := os.ReadFile(path); len(b) <= 4096 {
		t.Fatalf("%s is %d bytes (stat %d): the test needs more than a page", path, len(b), st.Size())
	}
	got, err := readMappings(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[n-1].HostID != 0 || got[n-1].ContainerID != n-1 {
		t.Fatalf("read %d ranges, last %+v; want %d, the last mapping host root", len(got), got[len(got)-1], n)
	}
}
