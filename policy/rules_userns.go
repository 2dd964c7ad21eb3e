package policy

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/spec"
)

// procNSUserPID is the pid of /proc/<pid>/ns/user, how CRI runtimes name
// the user namespace of a Pod's sandbox when a container joins it; its
// mappings are then readable in /proc/<pid>/{uid,gid}_map.
func procNSUserPID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return "", false
	}
	pid, ok := strings.CutSuffix(rest, "/ns/user")
	if !ok || pid == "" || strings.Trim(pid, "0123456789") != "" {
		return "", false
	}
	return pid, true
}

// maxMappingFile bounds a /proc/<pid>/uid_map read: the kernel allows 340
// lines of three numbers.
const maxMappingFile = 32 << 10

// checkUserNamespace looks at where the container's ids land on the host.
// A user namespace is what lets Kubernetes relax runAsNonRoot and
// procMount for hostUsers: false Pods (pod-security-admission
// policy/check_runAsNonRoot.go), so a mapping that sends any id to host
// root turns that relaxation into root on the host; the process's own
// uid mapped to host 0 is the same as running as root.
func checkUserNamespace(p *Policy, env *Env, s *specs.Spec) []Finding {
	if !p.RestrictUserNamespaces {
		return nil
	}
	ns := spec.Namespace(s, specs.UserNamespace)
	if ns == nil || spec.IsHostNamespace(specs.UserNamespace, ns.Path) {
		return nil
	}
	var out []Finding
	bad := func(field, problem, fix string) {
		out = append(out, Finding{Field: field, Problem: problem, Fix: fix})
	}
	type source struct {
		field    string
		uid, gid []specs.LinuxIDMapping
	}
	var sources []source
	if s.Linux != nil && (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0 || ns.Path == "") {
		sources = append(sources, source{"linux.uidMappings, linux.gidMappings", s.Linux.UIDMappings, s.Linux.GIDMappings})
	}
	if ns.Path != "" && pinnedUserNamespace(env, s, ns.Path) {
		// containerd 2.x pins the Pod's user namespace, made from the
		// sandbox spec's own mappings, and the sandbox joins it
		// (internal/cri/server/podsandbox/sandbox_run_linux.go). The
		// spec's mappings are those; runc 1.2 and later refuse a spec
		// whose mappings differ from the joined namespace's.
		if len(sources) == 0 {
			bad("linux.uidMappings, linux.gidMappings", "the pinned user namespace is joined without its mappings in the spec", "give the mappings the namespace was made with")
			return out
		}
	} else if ns.Path != "" {
		pid, ok := procNSUserPID(ns.Path)
		if !ok {
			bad("linux.namespaces[type=user].path",
				fmt.Sprintf("the user namespace %s is joined by a path whose mappings secrun cannot read", ns.Path),
				"join a Pod's user namespace as /proc/<pid>/ns/user, as containerd and CRI-O do")
			return out
		}
		uid, err1 := readMappings("/proc/" + pid + "/uid_map")
		gid, err2 := readMappings("/proc/" + pid + "/gid_map")
		if err1 != nil || err2 != nil {
			bad("linux.namespaces[type=user].path",
				fmt.Sprintf("the mappings of user namespace %s cannot be read: %v", ns.Path, cmp.Or(err1, err2)),
				"join the user namespace of a running sandbox")
			return out
		}
		sources = append(sources, source{"the mappings of " + ns.Path, uid, gid})
	}
	for _, src := range sources {
		for _, k := range []struct {
			kind string
			m    []specs.LinuxIDMapping
			id   *uint32
		}{{"uid", src.uid, processUID(s)}, {"gid", src.gid, processGID(s)}} {
			if len(k.m) == 0 {
				bad(src.field, fmt.Sprintf("the user namespace has no %s mapping", k.kind), "give both uid and gid mappings")
				continue
			}
			if err := checkMappings(k.m); err != nil {
				bad(src.field, fmt.Sprintf("%s mappings: %v", k.kind, err), "fix the mappings: each range non-empty, within 32 bits, no two overlapping")
				continue
			}
			for _, r := range k.m {
				if r.HostID == 0 {
					bad(src.field, fmt.Sprintf("%s %d-%d in the container is host %s 0 (root) and up", k.kind, r.ContainerID, uint64(r.ContainerID)+uint64(r.Size)-1, k.kind),
						"map the container's ids to an unprivileged host range, as the kubelet does for hostUsers: false (from 65536)")
				}
			}
			if k.id != nil && !mapped(k.m, *k.id) {
				bad(src.field, fmt.Sprintf("the process %s %d is not mapped in the user namespace", k.kind, *k.id), "map the process's id, or run it as a mapped id")
			}
		}
	}
	return out
}

func processUID(s *specs.Spec) *uint32 {
	if s.Process == nil {
		return nil
	}
	return &s.Process.User.UID
}

func processGID(s *specs.Spec) *uint32 {
	if s.Process == nil {
		return nil
	}
	return &s.Process.User.GID
}

func mapped(m []specs.LinuxIDMapping, id uint32) bool {
	for _, r := range m {
		if uint64(id) >= uint64(r.ContainerID) && uint64(id) < uint64(r.ContainerID)+uint64(r.Size) {
			return true
		}
	}
	return false
}

// checkMappings applies the kernel's rules for an id map
// (kernel/user_namespace.c mappings_overlap): non-empty ranges within 32
// bits, no two overlapping on either side.
func checkMappings(m []specs.LinuxIDMapping) error {
	for i, a := range m {
		if a.Size == 0 {
			return fmt.Errorf("range %d is empty", i)
		}
		if uint64(a.ContainerID)+uint64(a.Size) > 1<<32 || uint64(a.HostID)+uint64(a.Size) > 1<<32 {
			return fmt.Errorf("range %d goes past 2^32", i)
		}
		for j := 0; j < i; j++ {
			b := m[j]
			if overlap(a.ContainerID, a.Size, b.ContainerID, b.Size) || overlap(a.HostID, a.Size, b.HostID, b.Size) {
				return fmt.Errorf("ranges %d and %d overlap", j, i)
			}
		}
	}
	return nil
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// readMappings parses /proc/<pid>/{uid,gid}_map.
func readMappings(path string) ([]specs.LinuxIDMapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ReadAll, not one Read: the kernel hands a map file out a page at a
	// time, and a range after the first page that maps host root would
	// otherwise go unseen.
	b, err := io.ReadAll(io.LimitReader(f, maxMappingFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxMappingFile {
		return nil, fmt.Errorf("%s: more than %d bytes, longer than any mapping the kernel allows", path, maxMappingFile)
	}
	var out []specs.LinuxIDMapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s: unexpected line %q", path, sc.Text())
		}
		var v [3]uint32
		for i, f := range fields {
			x, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			v[i] = uint32(x)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}

// pinnedUserNamespace reports whether path is the user namespace the CRI
// runtime pinned for this bundle's own Pod:
// <state>/io.containerd.grpc.v1.cri/sandboxes/<sandbox id>/pinned-namespaces/user.
func pinnedUserNamespace(env *Env, s *specs.Spec, path string) bool {
	parts := strings.Split(filepath.Clean(path), "/")
	n := len(parts)
	if n < 5 || parts[n-1] != "user" || parts[n-2] != "pinned-namespaces" || parts[n-4] != "sandboxes" || parts[n-5] != "io.containerd.grpc.v1.cri" {
		return false
	}
	id := parts[n-3]
	return id != "" && (id == firstAnnotation(s, sandboxIDAnnotations) || (env != nil && id == env.ContainerID)) &&
		noLinksBelow(path, 5)
}
