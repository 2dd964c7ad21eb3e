package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestPlugin runs the built plugin as containerd would, against a network
// namespace held by a sleeping child, and looks at the namespace through
// /proc/<pid>/net: eth0 and its peer inside with a 127/8 address, nothing
// new on the host, nothing left after DEL.
func TestPlugin(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("creating network namespaces needs root")
		}
		t.Skip("skipped: creating network namespaces needs root")
	}
	bin := filepath.Join(t.TempDir(), "loopnet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lo := filepath.Join(filepath.Dir(bin), "loopback")
	if err := os.Link(bin, lo); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "600")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	netns := "/proc/" + pid + "/ns/net"
	hostBefore := hostInterfaces(t)

	plugin := func(path, cmd, conf string) (map[string]any, string) {
		c := exec.Command(path)
		c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", "CNI_CONTAINERID=abc123", "CNI_PATH=" + filepath.Dir(bin)}
		c.Stdin = strings.NewReader(conf)
		out, err := c.Output()
		if err != nil {
			return nil, string(out) + err.Error()
		}
		var m map[string]any
		if len(out) > 0 {
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("%s %s: output is not JSON: %v: %s", path, cmd, err, out)
			}
		}
		return m, ""
	}
	conf := `{"cniVersion":"1.0.0","name":"test","type":"loopnet"}`

	res, fail := plugin(lo, "ADD", `{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}`)
	if fail != "" {
		t.Fatalf("loopback ADD: %s", fail)
	}
	if ips := res["ips"].([]any); ips[0].(map[string]any)["address"] != "127.0.0.1/8" || ips[0].(map[string]any)["version"] != "4" {
		t.Errorf("loopback result %v, want 127.0.0.1/8 with version 4 (a 0.3.1 result)", res)
	}

	res, fail = plugin(bin, "ADD", conf)
	if fail != "" {
		t.Fatalf("ADD: %s", fail)
	}
	t.Logf("ADD result: %v", res)
	addr := res["ips"].([]any)[0].(map[string]any)["address"].(string)
	ip, _, err := net.ParseCIDR(addr)
	if err != nil || !ip.IsLoopback() || ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("address %q is not a 127/8 address other than 127.0.0.1", addr)
	}
	if _, ok := res["ips"].([]any)[0].(map[string]any)["version"]; ok {
		t.Errorf("a 1.0.0 result carries an IP version: %v", res)
	}
	if ifs := nsInterfaces(t, pid); !slices.Contains(ifs, "eth0") || !slices.Contains(ifs, peerName) || !slices.Contains(ifs, "lo") {
		t.Errorf("interfaces in the namespace: %v, want lo, eth0 and %s", ifs, peerName)
	}
	if trie, _ := os.ReadFile("/proc/" + pid + "/net/fib_trie"); !strings.Contains(string(trie), ip.String()) {
		t.Errorf("%s is not in the namespace's routing tables:\n%s", ip, trie)
	}
	if after := hostInterfaces(t); !slices.Equal(after, hostBefore) {
		t.Errorf("the host's interfaces changed: %v -> %v", hostBefore, after)
	}
	if _, fail := plugin(bin, "CHECK", conf); fail != "" {
		t.Errorf("CHECK after ADD: %s", fail)
	}
	if _, fail := plugin(bin, "ADD", conf); fail == "" {
		t.Error("a second ADD for eth0 succeeded")
	}
	if _, fail := plugin(bin, "DEL", conf); fail != "" {
		t.Fatalf("DEL: %s", fail)
	}
	if ifs := nsInterfaces(t, pid); slices.Contains(ifs, "eth0") || slices.Contains(ifs, peerName) {
		t.Errorf("interfaces after DEL: %v", ifs)
	}
	if _, fail := plugin(bin, "DEL", conf); fail != "" {
		t.Errorf("a second DEL failed: %s", fail)
	}
	if _, fail := plugin(bin, "CHECK", conf); fail == "" {
		t.Error("CHECK succeeded after DEL")
	}
	res, fail = plugin(bin, "VERSION", "")
	if fail != "" || !slices.Contains(res["supportedVersions"].([]any), any("1.0.0")) {
		t.Errorf("VERSION: %v %s", res, fail)
	}
	if _, fail := plugin(bin, "ADD", `{"cniVersion":"9.9.9","name":"x","type":"loopnet"}`); !strings.Contains(fail, `cniVersion \"9.9.9\"`) {
		t.Errorf("an unknown cniVersion was not refused by name: %q", fail)
	}
}

func TestAddressInLoopbackSpace(t *testing.T) {
	seen := map[string]bool{}
	for i := range 2000 {
		ip := address("container-" + strconv.Itoa(i))
		if ip[0] != 127 || ip[1] == 0 || ip[3] == 0 || ip[3] == 255 {
			t.Fatalf("address %s for container %d is outside 127.1-255.x.1-254", ip, i)
		}
		seen[ip.String()] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct addresses for 2000 containers", len(seen))
	}
}

func nsInterfaces(t *testing.T, pid string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func hostInterfaces(t *testing.T) []string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}
