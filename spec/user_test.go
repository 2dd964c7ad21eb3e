package spec

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64(v int64) *int64 { return &v }
func boolp(v bool) *bool { return &v }

func testdataRootfs(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "user", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bundleSpec is what containerd would have written before secrun runs.
func bundleSpec(uid, gid uint32, extra ...uint32) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{User: specs.User{UID: uid, GID: gid, AdditionalGids: extra}}}
}

func TestWithUser(t *testing.T) {
	rootfs := testdataRootfs(t, "rootfs")
	type want struct {
		uid, gid uint32
		gids     []uint32
	}
	tests := []struct {
		name    string
		intent  UserIntent
		bundle  *specs.Spec
		want    want
		wantErr error
		errHas  []string
	}{
		{name: "runAsUser in passwd takes its group and memberships",
			intent: UserIntent{RunAsUser: i64(1000)},
			want:   want{1000, 1000, []uint32{10, 29, 1000}}},
		{name: "first passwd entry for a uid wins",
			intent: UserIntent{RunAsUser: i64(1000), SupplementalGroupsPolicy: "Merge"},
			want:   want{1000, 1000, []uint32{10, 29, 1000}}},
		{name: "strict drops memberships",
			intent: UserIntent{RunAsUser: i64(1000), SupplementalGroupsPolicy: "Strict"},
			want:   want{1000, 1000, []uint32{1000}}},
		{name: "strict keeps listed groups and fsGroup",
			intent: UserIntent{RunAsUser: i64(1000), SupplementalGroupsPolicy: "Strict", SupplementalGroups: []int64{44}, FSGroup: i64(2000)},
			want:   want{1000, 1000, []uint32{44, 1000, 2000}}},
		{name: "runAsGroup replaces the primary group",
			intent: UserIntent{RunAsUser: i64(1000), RunAsGroup: i64(3000)},
			want:   want{1000, 3000, []uint32{10, 29, 3000}}},
		{name: "uid not in passwd gets gid 0",
			intent: UserIntent{RunAsUser: i64(5555)},
			want:   want{5555, 0, []uint32{0}}},
		{name: "supplemental groups and fsGroup sorted and deduplicated",
			intent: UserIntent{RunAsUser: i64(5555), SupplementalGroups: []int64{7, 5, 7, 0}, FSGroup: i64(5)},
			want:   want{5555, 0, []uint32{0, 5, 7}}},
		{name: "root",
			intent: UserIntent{RunAsUser: i64(0)},
			want:   want{0, 0, []uint32{0, 10}}},
		{name: "image user by name",
			intent: UserIntent{ImageUser: "alice"},
			want:   want{1000, 1000, []uint32{10, 29, 1000}}},
		{name: "image user group part is dropped as by the kubelet",
			intent: UserIntent{ImageUser: "bob:video"},
			want:   want{1001, 100, []uint32{29, 44, 100}}},
		{name: "a group named like the user is not a supplementary group (containerd WithAdditionalGIDs)",
			intent: UserIntent{RunAsUser: i64(1001)},
			want:   want{1001, 100, []uint32{29, 44, 100}}},
		{name: "root's own group lists root: only as the primary group",
			intent: UserIntent{RunAsUser: i64(0), RunAsGroup: i64(5)},
			want:   want{0, 5, []uint32{5, 10}}},
		{name: "numeric image user with gid",
			intent: UserIntent{ImageUser: "1001:4444"},
			want:   want{1001, 100, []uint32{29, 44, 100}}},
		{name: "numeric image user not in passwd",
			intent: UserIntent{ImageUser: "4321"},
			want:   want{4321, 0, []uint32{0}}},
		{name: "runAsUser beats image user",
			intent: UserIntent{RunAsUser: i64(1001), ImageUser: "alice"},
			want:   want{1001, 100, []uint32{29, 44, 100}}},
		{name: "runAsGroup with image user",
			intent: UserIntent{RunAsGroup: i64(3000), ImageUser: "alice"},
			want:   want{1000, 3000, []uint32{10, 29, 3000}}},
		{name: "bundle user kept, its groups merged",
			intent: UserIntent{SupplementalGroups: []int64{9}},
			bundle: bundleSpec(1001, 100, 100, 4242),
			want:   want{1001, 100, []uint32{9, 29, 44, 100, 4242}}},
		{name: "bundle user strict",
			intent: UserIntent{SupplementalGroupsPolicy: "Strict"},
			bundle: bundleSpec(1001, 100, 29, 44, 100, 4242),
			want:   want{1001, 100, []uint32{100}}},
		{name: "runAsGroup without any user keeps the bundle uid",
			intent: UserIntent{RunAsGroup: i64(3000)},
			bundle: bundleSpec(0, 0, 0),
			want:   want{0, 3000, []uint32{0, 10, 3000}}},
		{name: "runAsNonRoot satisfied",
			intent: UserIntent{RunAsUser: i64(1000), RunAsNonRoot: boolp(true)},
			want:   want{1000, 1000, []uint32{10, 29, 1000}}},
		{name: "runAsNonRoot satisfied by a named image user",
			intent: UserIntent{ImageUser: "bob", RunAsNonRoot: boolp(true)},
			want:   want{1001, 100, []uint32{29, 44, 100}}},
		{name: "runAsNonRoot false allows root",
			intent: UserIntent{RunAsUser: i64(0), RunAsNonRoot: boolp(false)},
			want:   want{0, 0, []uint32{0, 10}}},
		{name: "runAsNonRoot with gid 0 is fine",
			intent: UserIntent{RunAsUser: i64(5555), RunAsNonRoot: boolp(true)},
			want:   want{5555, 0, []uint32{0}}},

		// Refusals.
		{name: "runAsNonRoot with runAsUser 0",
			intent:  UserIntent{RunAsUser: i64(0), RunAsNonRoot: boolp(true)},
			wantErr: ErrRunAsRoot, errHas: []string{"runAsUser is 0", "set runAsUser to a non-zero uid"}},
		{name: "runAsNonRoot with image root by name",
			intent:  UserIntent{ImageUser: "root", RunAsNonRoot: boolp(true)},
			wantErr: ErrRunAsRoot, errHas: []string{`USER "root" is uid 0`}},
		{name: "runAsNonRoot with image root by uid",
			intent:  UserIntent{ImageUser: "0:0", RunAsNonRoot: boolp(true)},
			wantErr: ErrRunAsRoot},
		{name: "runAsNonRoot with bundle root",
			intent:  UserIntent{RunAsNonRoot: boolp(true)},
			bundle:  bundleSpec(0, 0),
			wantErr: ErrRunAsRoot, errHas: []string{"would run as uid 0"}},
		{name: "runAsNonRoot with unresolvable named image user",
			intent:  UserIntent{ImageUser: "carol", RunAsNonRoot: boolp(true)},
			wantErr: ErrUserNotFound, errHas: []string{"runAsNonRoot", `non-numeric user "carol"`, "cannot be verified to be non-root", filepath.Join(rootfs, "etc/passwd")}},
		{name: "unknown named image user",
			intent:  UserIntent{ImageUser: "carol:users"},
			wantErr: ErrUserNotFound, errHas: []string{`"carol"`, filepath.Join(rootfs, "etc/passwd")}},
		{name: "negative runAsUser", intent: UserIntent{RunAsUser: i64(-1)}, wantErr: ErrInvalidID, errHas: []string{"runAsUser -1", "negative"}},
		{name: "negative runAsGroup", intent: UserIntent{RunAsUser: i64(1), RunAsGroup: i64(-2)}, wantErr: ErrInvalidID, errHas: []string{"runAsGroup"}},
		{name: "negative supplemental group", intent: UserIntent{SupplementalGroups: []int64{1, -5}}, wantErr: ErrInvalidID, errHas: []string{"-5"}},
		{name: "negative fsGroup", intent: UserIntent{FSGroup: i64(-1)}, wantErr: ErrInvalidID, errHas: []string{"fsGroup"}},
		{name: "runAsUser too large", intent: UserIntent{RunAsUser: i64(math.MaxInt32 + 1)}, wantErr: ErrInvalidID, errHas: []string{"2147483647"}},
		{name: "runAsUser largest allowed", intent: UserIntent{RunAsUser: i64(math.MaxInt32)},
			want: want{math.MaxInt32, 0, []uint32{0}}},
		{name: "negative image uid", intent: UserIntent{ImageUser: "-1"}, wantErr: ErrInvalidID},
		{name: "image uid out of range", intent: UserIntent{ImageUser: "99999999999999999999"}, wantErr: ErrInvalidID},
		{name: "image uid above int32", intent: UserIntent{ImageUser: "4294967295"}, wantErr: ErrInvalidID},
		{name: "policy misspelt", intent: UserIntent{SupplementalGroupsPolicy: "merge"}, errHas: []string{"did you mean Merge?"}},
		{name: "policy unknown", intent: UserIntent{SupplementalGroupsPolicy: "Loose"}, errHas: []string{"must be Merge or Strict"}},
		{name: "image user empty user part", intent: UserIntent{ImageUser: ":1000"}, errHas: []string{"user part is empty"}},
		{name: "image user empty group part", intent: UserIntent{ImageUser: "alice:"}, errHas: []string{"group after ':' is empty"}},
		{name: "image user two colons", intent: UserIntent{ImageUser: "a:b:c"}, errHas: []string{"want user, uid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.bundle
			if s == nil {
				s = bundleSpec(12345, 12345, 12345)
			}
			before := s.Process.User
			before.AdditionalGids = slices.Clone(before.AdditionalGids)
			err := WithUser(rootfs, tc.intent)(s)
			if tc.wantErr != nil || tc.errHas != nil {
				if err == nil {
					t.Fatalf("err = nil, user = %+v", s.Process.User)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
				for _, w := range tc.errHas {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if got := s.Process.User; got.UID != before.UID || got.GID != before.GID || !slices.Equal(got.AdditionalGids, before.AdditionalGids) {
					t.Errorf("spec changed on error: %+v, was %+v", got, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := s.Process.User
			if got.UID != tc.want.uid || got.GID != tc.want.gid || !slices.Equal(got.AdditionalGids, tc.want.gids) {
				t.Errorf("user = %d:%d %v, want %d:%d %v", got.UID, got.GID, got.AdditionalGids, tc.want.uid, tc.want.gid, tc.want.gids)
			}
		})
	}
}

func TestWithUserRootfsVariants(t *testing.T) {
	t.Run("root.path used when rootfs is empty", func(t *testing.T) {
		s := bundleSpec(0, 0)
		s.Root = &specs.Root{Path: testdataRootfs(t, "rootfs")}
		if err := Apply(s, WithUser("", UserIntent{ImageUser: "alice"})); err != nil {
			t.Fatal(err)
		}
		if s.Process.User.UID != 1000 {
			t.Errorf("uid = %d", s.Process.User.UID)
		}
	})
	t.Run("one option, two bundles", func(t *testing.T) {
		opt := WithUser("", UserIntent{RunAsUser: i64(1000)})
		a := &specs.Spec{Root: &specs.Root{Path: testdataRootfs(t, "rootfs")}}
		b := &specs.Spec{Root: &specs.Root{Path: t.TempDir()}}
		if err := opt(a); err != nil {
			t.Fatal(err)
		}
		if err := opt(b); err != nil {
			t.Fatal(err)
		}
		if a.Process.User.GID != 1000 || b.Process.User.GID != 0 {
			t.Errorf("gids %d, %d: the second bundle was resolved against the first's rootfs", a.Process.User.GID, b.Process.User.GID)
		}
	})
	t.Run("error leaves no process section behind", func(t *testing.T) {
		s := &specs.Spec{}
		if err := WithUser(testdataRootfs(t, "rootfs"), UserIntent{ImageUser: "carol"})(s); err == nil || s.Process != nil {
			t.Fatalf("err = %v, process = %+v", err, s.Process)
		}
	})
	t.Run("relative rootfs refused", func(t *testing.T) {
		s := bundleSpec(0, 0)
		s.Root = &specs.Root{Path: "rootfs"}
		err := WithUser("", UserIntent{RunAsUser: i64(1)})(s)
		if err == nil || !strings.Contains(err.Error(), "absolute") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no process section", func(t *testing.T) {
		s := &specs.Spec{}
		if err := WithUser(testdataRootfs(t, "rootfs"), UserIntent{RunAsUser: i64(1001)})(s); err != nil {
			t.Fatal(err)
		}
		if s.Process == nil || s.Process.User.UID != 1001 || s.Process.User.GID != 100 {
			t.Errorf("process = %+v", s.Process)
		}
	})
	t.Run("rootfs without /etc", func(t *testing.T) {
		dir := t.TempDir()
		s := &specs.Spec{}
		if err := WithUser(dir, UserIntent{RunAsUser: i64(1000)})(s); err != nil {
			t.Fatal(err)
		}
		if u := s.Process.User; u.UID != 1000 || u.GID != 0 || !slices.Equal(u.AdditionalGids, []uint32{0}) {
			t.Errorf("user = %+v", u)
		}
		err := WithUser(dir, UserIntent{ImageUser: "alice"})(s)
		if !errors.Is(err, ErrUserNotFound) {
			t.Errorf("named user without passwd: %v", err)
		}
	})
	t.Run("passwd without group", func(t *testing.T) {
		s := &specs.Spec{}
		if err := WithUser(testdataRootfs(t, "rootfs-passwd-only"), UserIntent{RunAsUser: i64(1000), SupplementalGroups: []int64{3}})(s); err != nil {
			t.Fatal(err)
		}
		if u := s.Process.User; u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{3, 1000}) {
			t.Errorf("user = %+v", u)
		}
	})
	t.Run("missing rootfs", func(t *testing.T) {
		err := WithUser(filepath.Join(t.TempDir(), "nope"), UserIntent{RunAsUser: i64(1)})(&specs.Spec{})
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

// writeFile creates path (and its directory) with body.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// escapeFixture builds a rootfs whose etc/passwd and etc/group are links
// that would, if followed on the host, reach files granting uid 1000 the
// gid 4242 and membership of 4243.
func escapeFixture(t *testing.T, absolute bool) string {
	t.Helper()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "passwd"), "evil:x:1000:4242::/:/bin/sh\n")
	writeFile(t, filepath.Join(outside, "group"), "evilgrp:x:4243:evil\n")
	rootfs := filepath.Join(base, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group"} {
		target := filepath.Join("..", "..", "outside", f)
		if absolute {
			target = filepath.Join(outside, f)
		}
		if err := os.Symlink(target, filepath.Join(rootfs, "etc", f)); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

func TestWithUserSymlinkEscape(t *testing.T) {
	for _, absolute := range []bool{false, true} {
		name := map[bool]string{false: "relative link", true: "absolute link"}[absolute]
		t.Run(name, func(t *testing.T) {
			rootfs := escapeFixture(t, absolute)
			s := &specs.Spec{}
			if err := WithUser(rootfs, UserIntent{RunAsUser: i64(1000)})(s); err != nil {
				t.Fatal(err)
			}
			if u := s.Process.User; u.GID == 4242 || slices.Contains(u.AdditionalGids, 4243) {
				t.Fatalf("read a file outside the rootfs: %+v", u)
			}
			if err := WithUser(rootfs, UserIntent{ImageUser: "evil"})(s); !errors.Is(err, ErrUserNotFound) {
				t.Fatalf("named user from outside the rootfs: %v", err)
			}
		})
	}
	t.Run("links inside the rootfs resolve inside it", func(t *testing.T) {
		rootfs := t.TempDir()
		writeFile(t, filepath.Join(rootfs, "usr/share/base/passwd"), "app:x:700:701::/:/bin/sh\n")
		writeFile(t, filepath.Join(rootfs, "usr/share/base/group"), "extra:x:702:app\n")
		if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		// An absolute link means the container's /, not the host's.
		if err := os.Symlink("/usr/share/base/passwd", filepath.Join(rootfs, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../usr/share/base/group", filepath.Join(rootfs, "etc/group")); err != nil {
			t.Fatal(err)
		}
		s := &specs.Spec{}
		if err := WithUser(rootfs, UserIntent{ImageUser: "app"})(s); err != nil {
			t.Fatal(err)
		}
		if u := s.Process.User; u.UID != 700 || u.GID != 701 || !slices.Equal(u.AdditionalGids, []uint32{701, 702}) {
			t.Errorf("user = %+v", u)
		}
	})
}

func TestWithUserOddFiles(t *testing.T) {
	t.Run("fifo does not hang", func(t *testing.T) {
		rootfs := t.TempDir()
		if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(rootfs, "etc/passwd"), 0o644); err != nil {
			t.Skip("mkfifo:", err)
		}
		err := WithUser(rootfs, UserIntent{RunAsUser: i64(1)})(&specs.Spec{})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		rootfs := t.TempDir()
		if err := os.MkdirAll(filepath.Join(rootfs, "etc/passwd"), 0o755); err != nil {
			t.Fatal(err)
		}
		err := WithUser(rootfs, UserIntent{RunAsUser: i64(1)})(&specs.Spec{})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		rootfs := t.TempDir()
		writeFile(t, filepath.Join(rootfs, "etc/group"), "")
		if err := os.Truncate(filepath.Join(rootfs, "etc/group"), maxUserFileSize+1); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(rootfs, "etc/passwd"), "a:x:1:1::/:/bin/sh\n")
		err := WithUser(rootfs, UserIntent{RunAsUser: i64(1)})(&specs.Spec{})
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage lines are skipped", func(t *testing.T) {
		rootfs := t.TempDir()
		writeFile(t, filepath.Join(rootfs, "etc/passwd"), "garbage\n\n  \nweird:x:notanumber\napp:x:5:6::/:/bin/sh\n")
		writeFile(t, filepath.Join(rootfs, "etc/group"), "g:x:7:app,other\nbad\n")
		s := &specs.Spec{}
		if err := WithUser(rootfs, UserIntent{ImageUser: "app"})(s); err != nil {
			t.Fatal(err)
		}
		if u := s.Process.User; u.UID != 5 || u.GID != 6 || !slices.Equal(u.AdditionalGids, []uint32{6, 7}) {
			t.Errorf("user = %+v", u)
		}
	})
}

func TestOpenInRootfsFallback(t *testing.T) {
	for _, absolute := range []bool{false, true} {
		rootfs := escapeFixture(t, absolute)
		if f, err := openInRootfsFallback(rootfs, "etc/passwd"); err == nil {
			f.Close()
			t.Errorf("absolute=%v: fallback opened a link leaving the rootfs", absolute)
		}
	}
	rootfs := testdataRootfs(t, "rootfs")
	f, err := openInRootfsFallback(rootfs, "etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err == nil {
		if _, err := openInRootfsFallback(dir, "fifo"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("fifo: %v", err)
		}
	}
}

func TestCheckRunAsNonRoot(t *testing.T) {
	tests := []struct {
		name string
		s    *specs.Spec
		ok   bool
	}{
		{"nil spec", nil, false},
		{"no process", &specs.Spec{}, false},
		{"uid 0", bundleSpec(0, 1000), false},
		{"uid 1000", bundleSpec(1000, 1000), true},
		{"uid 1000 gid 0", bundleSpec(1000, 0), true},
	}
	for _, tc := range tests {
		err := CheckRunAsNonRoot(tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrRunAsRoot) || !strings.Contains(err.Error(), "uid 0") || !strings.Contains(err.Error(), "runAsUser")) {
			t.Errorf("%s: error %q should name uid 0 and runAsUser", tc.name, err)
		}
	}
}
