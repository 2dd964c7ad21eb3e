//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

func collectState(c *config) *report.Report {
	r := &report.Report{
		Version:        report.Version,
		UID:            os.Getuid(),
		EUID:           os.Geteuid(),
		GID:            os.Getgid(),
		EGID:           os.Getegid(),
		Groups:         []int{},
		SeccompFilters: -1,
		Sysctls:        map[string]string{},
		Ops:            map[string]report.Op{},
	}
	r.Caps = report.Caps{Bounding: []string{}, Effective: []string{}, Permitted: []string{}, Inheritable: []string{}, Ambient: []string{}}
	if g, err := unix.Getgroups(); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("getgroups: %v", err))
	} else if g != nil {
		r.Groups = g
	}

	if f, err := os.Open("/proc/self/status"); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("read process status: %v", err))
		statusFromSyscalls(r)
	} else {
		err := parseStatus(f, r)
		f.Close()
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("parse /proc/self/status: %v", err))
		}
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("uname: %v", err))
	} else {
		r.Hostname = unix.ByteSliceToString(uts.Nodename[:])
	}

	r.AppArmor, r.SELinux = lsmLabels()

	for _, name := range c.sysctls {
		v, err := readSysctl(name)
		if err != nil {
			if r.SysctlErrors == nil {
				r.SysctlErrors = map[string]string{}
			}
			r.SysctlErrors[name] = err.Error()
			continue
		}
		r.Sysctls[name] = v
	}
	return r
}

// parseStatus fills the capability sets, no_new_privs and seccomp fields
// from a /proc/<pid>/status document.
func parseStatus(rd io.Reader, r *report.Report) error {
	sets := map[string]*[]string{
		"CapInh": &r.Caps.Inheritable,
		"CapPrm": &r.Caps.Permitted,
		"CapEff": &r.Caps.Effective,
		"CapBnd": &r.Caps.Bounding,
		"CapAmb": &r.Caps.Ambient,
	}
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		if dst, ok := sets[key]; ok {
			mask, err := report.ParseCapHex(val)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			*dst = report.DecodeCapMask(mask)
			continue
		}
		var dst *int
		switch key {
		case "NoNewPrivs":
			dst = &r.NoNewPrivs
		case "Seccomp":
			dst = &r.Seccomp
		case "Seccomp_filters":
			dst = &r.SeccompFilters
		default:
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*dst = n
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

// statusFromSyscalls is the fallback when /proc is not mounted; capability
// sets are left empty because only /proc exposes all five.
func statusFromSyscalls(r *report.Report) {
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		r.NoNewPrivs = v
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == nil {
		r.Seccomp = v
	}
}

// lsmLabels reads the AppArmor and SELinux labels. The per-LSM file
// attr/apparmor/current is unambiguous; the legacy attr/current belongs to
// whichever major LSM is active, so its format decides: SELinux contexts
// are colon-separated "user:role:type[:level]".
func lsmLabels() (apparmor, selinux string) {
	if b, err := os.ReadFile("/proc/self/attr/apparmor/current"); err == nil {
		apparmor = cleanLabel(b)
	}
	b, err := os.ReadFile("/proc/self/attr/current")
	if err != nil {
		return apparmor, ""
	}
	l := cleanLabel(b)
	if strings.Count(l, ":") >= 2 && !strings.Contains(l, " ") {
		return apparmor, l
	}
	if apparmor == "" {
		apparmor = l
	}
	return apparmor, ""
}

func cleanLabel(b []byte) string {
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
}

// sysctlPath maps "net.ipv4.ip_forward" (or "net/ipv4/ip_forward") to its
// /proc/sys file. Like sysctl(8), the dotted form cannot express components
// containing dots (e.g. VLAN interface names); use the slash form for those.
func sysctlPath(name string) (string, error) {
	rel := name
	if !strings.Contains(name, "/") {
		rel = strings.ReplaceAll(name, ".", "/")
	}
	rel = filepath.Clean("/" + rel)
	if rel == "/" {
		return "", fmt.Errorf("empty sysctl name %q", name)
	}
	return "/proc/sys" + rel, nil
}

// readSysctl only ever reads: a conformance probe must not be able to
// change kernel tunables even when it runs with full privileges.
func readSysctl(name string) (string, error) {
	p, err := sysctlPath(name)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// sysctlDetail renders name=value for Detail strings, reading the value
// fresh so ops can explain results that a sysctl changes.
func sysctlDetail(name string) string {
	v, err := readSysctl(name)
	if err != nil {
		return name + "=unreadable(" + errnoName(err) + ")"
	}
	return name + "=" + v
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	mountPoint string
	options    []string // per-mount options, e.g. "ro", "nosuid"
	fsType     string
	source     string
	superOpts  []string
}

// parseMountInfo parses proc(5) mountinfo lines; the optional fields end
// with a lone "-" and path fields use octal escapes for space, tab, newline
// and backslash.
func parseMountInfo(rd io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("malformed mountinfo line %q", sc.Text())
		}
		m := mountInfo{
			mountPoint: unescapeOctal(f[4]),
			options:    strings.Split(f[5], ","),
			fsType:     f[sep+1],
			source:     unescapeOctal(f[sep+2]),
		}
		if len(f) > sep+3 {
			m.superOpts = strings.Split(f[sep+3], ",")
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan mountinfo: %w", err)
	}
	return out, nil
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountAt returns the topmost mount whose mount point is exactly p; later
// lines stack over earlier ones.
func mountAt(mounts []mountInfo, p string) (mountInfo, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].mountPoint == p {
			return mounts[i], true
		}
	}
	return mountInfo{}, false
}

func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("open mountinfo: %w", err)
	}
	defer f.Close()
	return parseMountInfo(f)
}
