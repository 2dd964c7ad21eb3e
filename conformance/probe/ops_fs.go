//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secrun/secrun/conformance/probe/report"
)

// createAndRemove creates a new file in dir and removes it again.
// O_EXCL makes sure an existing file is never opened, let alone truncated.
func createAndRemove(dir string) report.Op {
	p := filepath.Join(dir, fmt.Sprintf(".secrun-probe-%d", os.Getpid()))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return outcome(err, "create "+p)
	}
	f.Close()
	o := outcome(nil, "create "+p)
	if err := os.Remove(p); err != nil {
		o.Detail += fmt.Sprintf("; remove failed: %v", err)
	}
	return o
}

// EROFS proves a read-only root; EACCES only shows the (non-root) user
// cannot write to /.
func opRootfsWrite(c *config) report.Op { return createAndRemove("/") }

func opScratchWrite(c *config) report.Op { return createAndRemove(c.scratch) }

// The runner plants a root-owned mode-04755 copy of the probe at -suid and
// runs the probe as non-root. OK means executing it raised the euid to 0,
// i.e. no_new_privs (or a nosuid mount) did not stop the escalation.
func opNNPSetuid(c *config) report.Op {
	if os.Geteuid() == 0 {
		return skipped("already running with euid 0, escalation cannot be observed", nil)
	}
	var st unix.Stat_t
	if err := unix.Stat(c.suidPath, &st); err != nil {
		return skipped("stat setuid copy "+c.suidPath, err)
	}
	fileInfo := fmt.Sprintf("%s uid=%d mode=%#o", c.suidPath, st.Uid, st.Mode&0o7777)
	if st.Uid != 0 || st.Mode&unix.S_ISUID == 0 {
		return skipped("setuid copy is not setuid-root: "+fileInfo, nil)
	}
	cmd := exec.Command(c.suidPath, "-report-euid")
	out, err := cmd.Output()
	if err != nil {
		return skipped("run "+c.suidPath, err)
	}
	euid, err := parseEUID(string(out))
	if err != nil {
		return skipped("read child euid", err)
	}
	return report.Op{
		OK:     euid == 0,
		Detail: fmt.Sprintf("euid=%d after exec of %s (caller euid=%d, no_new_privs=%s)", euid, fileInfo, os.Geteuid(), nnpState()),
	}
}

func nnpState() string {
	v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprint(v)
}

// opProcMasked reads each path: runtimes mask files by bind-mounting
// /dev/null over them and directories with an empty read-only tmpfs, so
// "readable and non-empty" means the content leaks. /proc/kcore also needs
// CAP_SYS_RAWIO to open, so EPERM there is not evidence of masking; Detail
// says what the path is mounted as.
func opProcMasked(c *config, ops map[string]report.Op) {
	for _, p := range c.masked {
		ops[report.PathOp(report.OpProcMasked, p)] = probeMasked(p)
	}
}

func probeMasked(p string) report.Op {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return report.Op{Skipped: true, Errno: "ENOENT", Detail: "absent"}
		}
		return skipped("stat "+p, err)
	}
	how := "not masked"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3 {
			how = "masked by /dev/null"
		}
	case unix.S_IFDIR:
		var sfs unix.Statfs_t
		if err := unix.Statfs(p, &sfs); err == nil && sfs.Type == unix.TMPFS_MAGIC {
			how = "masked by tmpfs"
		}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		ents, err := os.ReadDir(p)
		if err != nil {
			return withDetail(outcome(err, "readdir "+p), how)
		}
		if len(ents) == 0 {
			return report.Op{Detail: "readdir " + p + ": empty; " + how}
		}
		return report.Op{OK: true, Detail: fmt.Sprintf("readdir %s: %d entries; %s", p, len(ents), how)}
	}
	f, err := os.Open(p)
	if err != nil {
		return withDetail(outcome(err, "open "+p), how)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return withDetail(outcome(err, "read "+p), how)
	}
	if n == 0 {
		return report.Op{Detail: "read " + p + ": empty; " + how}
	}
	return report.Op{OK: true, Detail: fmt.Sprintf("read %s: %d bytes; %s", p, n, how)}
}

// opProcReadonly opens a file for writing and closes it without writing:
// a read-only mount refuses the open itself with EROFS, so no value is ever
// written (writing even one byte to /proc/sysrq-trigger would act). For a
// directory, a writable-looking file inside it is used. EACCES is a DAC or
// sysctl permission denial and says nothing about the mount; Detail adds
// statfs's read-only flag.
func opProcReadonly(c *config, ops map[string]report.Op) {
	for _, p := range c.readonly {
		ops[report.PathOp(report.OpProcReadonly, p)] = probeReadonly(p)
	}
}

func probeReadonly(p string) report.Op {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return report.Op{Skipped: true, Errno: "ENOENT", Detail: "absent"}
		}
		return skipped("stat "+p, err)
	}
	target := p
	if fi.IsDir() {
		target = findWritableFile(p)
		if target == "" {
			return skipped("no regular file found under "+p, nil)
		}
	}
	roFlag := "statfs ro=unknown"
	var sfs unix.Statfs_t
	if err := unix.Statfs(target, &sfs); err == nil {
		roFlag = fmt.Sprintf("statfs ro=%t", sfs.Flags&unix.ST_RDONLY != 0)
	}
	f, err := os.OpenFile(target, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	return withDetail(outcome(err, "open "+target+" O_WRONLY (closed unwritten)"), roFlag)
}

// findWritableFile returns the first regular file (lexical order, bounded
// depth and count) with a write bit under dir, or else the first regular
// file; the walk is bounded because /proc and /sys trees are huge.
func findWritableFile(dir string) string {
	const maxDepth, maxVisits = 3, 500
	var first, writable string
	visits := 0
	stop := errors.New("stop")
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		visits++
		if visits > maxVisits {
			return stop
		}
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if strings.Count(strings.TrimPrefix(p, dir), "/") >= maxDepth {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if first == "" {
			first = p
		}
		if info.Mode().Perm()&0o222 != 0 {
			writable = p
			return stop
		}
		return nil
	})
	if writable != "" {
		return writable
	}
	return first
}

// opPrivDevices looks for host devices a privileged container exposes.
// Nodes are opened read-only and non-blocking and closed unread, which the
// device cgroup and CAP_SYS_RAWIO (for /dev/mem) decide. OK means a
// sensitive node (/dev/mem, /dev/kmem, /dev/port or any block device)
// could be opened.
func opPrivDevices(c *config) report.Op {
	var chr, blk int
	var blocks []string
	deadline := time.Now().Add(5 * time.Second)
	_ = filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil || time.Now().After(deadline) {
			return nil
		}
		switch t := d.Type(); {
		case t&fs.ModeDevice != 0 && t&fs.ModeCharDevice != 0:
			chr++
		case t&fs.ModeDevice != 0:
			blk++
			blocks = append(blocks, p)
		}
		return nil
	})
	opened := false
	var parts []string
	tryOpen := func(p string) string {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return "absent"
			}
			return errnoName(err)
		}
		unix.Close(fd)
		opened = true
		return "opened"
	}
	for _, p := range []string{"/dev/mem", "/dev/kmem", "/dev/port"} {
		parts = append(parts, p+"="+tryOpen(p))
	}
	for i, p := range blocks {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("(%d more block devices not opened)", len(blocks)-3))
			break
		}
		parts = append(parts, p+"="+tryOpen(p))
	}
	return report.Op{
		OK:     opened,
		Detail: fmt.Sprintf("char devices=%d block devices=%d; %s", chr, blk, strings.Join(parts, " ")),
	}
}

// opPrivSysRW reports whether /sys is mounted read-write; OK means it is,
// which lets the container reconfigure host devices and kernel objects.
func opPrivSysRW(c *config) report.Op {
	mounts, err := readMountInfo()
	if err != nil {
		return skipped("read mountinfo", err)
	}
	m, ok := mountAt(mounts, "/sys")
	if !ok {
		return skipped("/sys is not a mount point", nil)
	}
	rw := !contains(m.options, "ro")
	var sfs unix.Statfs_t
	statfsRO := "unknown"
	if err := unix.Statfs("/sys", &sfs); err == nil {
		statfsRO = fmt.Sprint(sfs.Flags&unix.ST_RDONLY != 0)
	}
	return report.Op{
		OK:     rw,
		Detail: fmt.Sprintf("/sys %s mount options %s (statfs ro=%s)", m.fsType, strings.Join(m.options, ","), statfsRO),
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func opAppArmorLabel(c *config) report.Op {
	aa, _ := lsmLabels()
	if aa == "" {
		return skipped("no AppArmor label readable (AppArmor not active)", nil)
	}
	return report.Op{OK: true, Detail: "label=" + aa}
}

// The runner names a path its profile denies writing. The file is opened
// for appending (created if missing) and a zero-length write is issued so
// that both the open-time and the per-write LSM hooks run without changing
// existing content. EACCES is the usual AppArmor denial; DAC or a read-only
// mount can also refuse, which Detail's errno distinguishes (EROFS).
func opAppArmorDenied(c *config) report.Op {
	if c.denyWrite == "" {
		return skipped("no -deny-write path given", nil)
	}
	f, err := os.OpenFile(c.denyWrite, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return outcome(err, "open "+c.denyWrite+" for writing")
	}
	defer f.Close()
	_, err = unix.Write(int(f.Fd()), nil)
	return outcome(err, "open+write "+c.denyWrite)
}
