// Command loopnet is the CNI plugin of secrun's containerd and Kubernetes
// tests: it gives a Pod a network without touching the host's. Both ends of
// a veth pair stay inside the Pod's network namespace; eth0 gets an address
// in 127.0.0.0/8 derived from the container id, so no bridge, no route and
// no address outside loopback space ever exists on the machine, and
// nothing is left behind when the namespace goes.
//
// The same binary, installed under the name "loopback" (or given a
// configuration of type "loopback"), brings up lo, which containerd's CRI
// plugin asks for on every sandbox (go-cni's WithLoNetwork), so the tests
// need no other plugin.
//
// It speaks the CNI protocol (CNI_COMMAND, CNI_NETNS, CNI_IFNAME,
// CNI_CONTAINERID in the environment, the network configuration on stdin,
// the result on stdout; github.com/containernetworking/cni SPEC.md) for
// ADD, DEL, CHECK, STATUS and VERSION.
package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// supported are the CNI versions whose results this plugin writes.
var supported = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// peerName is the veth end that stays behind eth0; it has no address.
const peerName = "lnpeer0"

type netConf struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Type       string `json:"type"`
}

// cniError is the error document the protocol puts on stdout.
type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

func main() {
	conf, err := run(os.Stdin, os.Stdout)
	if err != nil {
		v := conf.CNIVersion
		if v == "" {
			v = "1.0.0"
		}
		// Code 999: "plugin-specific error" in the CNI error-code table.
		json.NewEncoder(os.Stdout).Encode(cniError{CNIVersion: v, Code: 999, Msg: "loopnet: " + err.Error()})
		os.Exit(1)
	}
}

func run(stdin io.Reader, stdout io.Writer) (netConf, error) {
	var conf netConf
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "VERSION" {
		return conf, json.NewEncoder(stdout).Encode(map[string]any{"cniVersion": "1.0.0", "supportedVersions": supported})
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return conf, fmt.Errorf("read the network configuration: %w", err)
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return conf, fmt.Errorf("network configuration on stdin: %w", err)
	}
	if !slices.Contains(supported, conf.CNIVersion) {
		return conf, fmt.Errorf("cniVersion %q is not one of %v", conf.CNIVersion, supported)
	}
	// The loopback plugin's job, by name or by type.
	lo := conf.Type == "loopback" || filepath.Base(os.Args[0]) == "loopback"
	netns, ifname, id := os.Getenv("CNI_NETNS"), os.Getenv("CNI_IFNAME"), os.Getenv("CNI_CONTAINERID")
	if lo {
		ifname = "lo"
	}
	switch cmd {
	case "STATUS":
		return conf, nil
	case "ADD", "CHECK":
		if netns == "" || ifname == "" || id == "" {
			return conf, fmt.Errorf("CNI_NETNS, CNI_IFNAME and CNI_CONTAINERID must be set for %s", cmd)
		}
		var res result
		err := inNetns(netns, func(h *rtnl) error {
			var err error
			if lo {
				res, err = addLoopback(h, cmd == "CHECK")
			} else {
				res, err = addVeth(h, ifname, id, cmd == "CHECK")
			}
			return err
		})
		if err != nil {
			return conf, err
		}
		if cmd == "CHECK" {
			return conf, nil
		}
		res.Interfaces[0].Sandbox = netns
		return conf, json.NewEncoder(stdout).Encode(res.render(conf.CNIVersion))
	case "DEL":
		// DEL must succeed when there is nothing left to delete: the
		// namespace may be gone already, and lo goes with it.
		if lo || netns == "" {
			return conf, nil
		}
		if _, err := os.Stat(netns); err != nil {
			return conf, nil
		}
		return conf, inNetns(netns, func(h *rtnl) error {
			idx, err := h.linkIndex(ifname)
			if err != nil || idx == 0 {
				return err
			}
			return h.delLink(idx)
		})
	}
	return conf, fmt.Errorf("CNI_COMMAND %q is not ADD, DEL, CHECK, STATUS or VERSION", cmd)
}

// address is eth0's address for container id: 127.a.b.c with a >= 1, so
// never 127.0.0.x, which lo answers in every namespace.
func address(id string) net.IP {
	h := fnv.New32a()
	h.Write([]byte(id))
	s := h.Sum32()
	return net.IPv4(127, byte(1+(s>>16)%254), byte(s>>8), byte(1+s%254)).To4()
}

func addVeth(h *rtnl, ifname, id string, check bool) (result, error) {
	ip := address(id)
	idx, err := h.linkIndex(ifname)
	if err != nil {
		return result{}, err
	}
	if check {
		if idx == 0 {
			return result{}, fmt.Errorf("%s is missing", ifname)
		}
		return result{}, nil
	}
	if idx != 0 {
		return result{}, fmt.Errorf("%s exists already in this namespace", ifname)
	}
	if err := h.addVethPair(ifname, peerName); err != nil {
		return result{}, fmt.Errorf("create veth %s/%s: %w", ifname, peerName, err)
	}
	if idx, err = h.linkIndex(ifname); err != nil || idx == 0 {
		return result{}, fmt.Errorf("find %s after creating it: %v", ifname, err)
	}
	peer, err := h.linkIndex(peerName)
	if err != nil || peer == 0 {
		return result{}, fmt.Errorf("find %s after creating it: %v", peerName, err)
	}
	// A /32: the address is the Pod's own; no prefix route is added.
	if err := h.addAddr(idx, ip, 32); err != nil {
		return result{}, fmt.Errorf("add %s/32 to %s: %w", ip, ifname, err)
	}
	for _, i := range []int32{peer, idx} {
		if err := h.setUp(i); err != nil {
			return result{}, fmt.Errorf("set link %d up: %w", i, err)
		}
	}
	mac, err := h.linkMAC(ifname)
	if err != nil {
		return result{}, err
	}
	return result{Interfaces: []iface{{Name: ifname, MAC: mac}}, IP: ip, Prefix: 32}, nil
}

func addLoopback(h *rtnl, check bool) (result, error) {
	idx, err := h.linkIndex("lo")
	if err != nil || idx == 0 {
		return result{}, fmt.Errorf("find lo: %v", err)
	}
	if !check {
		if err := h.setUp(idx); err != nil {
			return result{}, fmt.Errorf("set lo up: %w", err)
		}
	}
	return result{Interfaces: []iface{{Name: "lo", MAC: "00:00:00:00:00:00"}}, IP: net.IPv4(127, 0, 0, 1).To4(), Prefix: 8}, nil
}

type iface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox,omitempty"`
}

type result struct {
	Interfaces []iface
	IP         net.IP
	Prefix     int
}

// render writes the result in the format of the requested version: before
// 1.0.0 each IP carries its family as "version".
func (r result) render(version string) map[string]any {
	ip := map[string]any{"address": fmt.Sprintf("%s/%d", r.IP, r.Prefix), "interface": 0}
	if strings.HasPrefix(version, "0.") {
		ip["version"] = "4"
	}
	return map[string]any{"cniVersion": version, "interfaces": r.Interfaces, "ips": []any{ip}}
}

// inNetns runs fn on a thread inside the network namespace at path, with
// a route netlink socket of that namespace. The thread goes back to its
// original namespace afterwards; if that fails it is never reused (the
// goroutine ends locked to it and the runtime discards it).
func inNetns(path string, fn func(*rtnl) error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	h, err := dialRtnl()
	if err != nil {
		return err
	}
	defer h.close()
	return fn(h)
}
