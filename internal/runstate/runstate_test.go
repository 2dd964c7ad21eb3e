package runstate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Setenv(DirEnv, filepath.Join(t.TempDir(), "state"))
	if rec, err := Load("/run/containerd/runc/k8s.io", "abc"); rec != nil || err != nil {
		t.Fatalf("Load before Save = %v, %v", rec, err)
	}
	if err := Save("/run/containerd/runc/k8s.io", "abc", Record{Runtime: "/usr/sbin/runc", Policy: "baseline"}); err != nil {
		t.Fatal(err)
	}
	rec, err := Load("/run/containerd/runc/k8s.io", "abc")
	if err != nil || rec == nil || rec.Runtime != "/usr/sbin/runc" || rec.Policy != "baseline" {
		t.Fatalf("Load = %+v, %v", rec, err)
	}
	// Ids are unique per root only.
	if rec, _ := Load("/run/containerd/runc/moby", "abc"); rec != nil {
		t.Error("a record leaked to another root")
	}
	st, _ := os.Stat(os.Getenv(DirEnv))
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v", st.Mode().Perm())
	}
	if err := Remove("/run/containerd/runc/k8s.io", "abc"); err != nil {
		t.Fatal(err)
	}
	if rec, err := Load("/run/containerd/runc/k8s.io", "abc"); rec != nil || err != nil {
		t.Fatalf("Load after Remove = %v, %v", rec, err)
	}
	if err := Remove("/run/containerd/runc/k8s.io", "abc"); err != nil {
		t.Errorf("Remove of nothing: %v", err)
	}
}

func TestRefusesWhatOthersCouldPlant(t *testing.T) {
	base := t.TempDir()
	elsewhere := t.TempDir()
	link := filepath.Join(base, "state")
	os.Symlink(elsewhere, link)
	t.Setenv(DirEnv, link)
	if err := Save("", "abc", Record{Runtime: "/usr/sbin/runc"}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked state dir: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("wrote through the link: %v", entries)
	}

	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	t.Setenv(DirEnv, open)
	if err := Save("", "abc", Record{Runtime: "/usr/sbin/runc"}); err == nil || !strings.Contains(err.Error(), "writable by nobody else") {
		t.Errorf("world-writable state dir: %v", err)
	}
	if _, err := Load("", "abc"); err == nil {
		t.Error("Load from a world-writable state dir")
	}

	t.Setenv(DirEnv, filepath.Join(base, "good"))
	if err := Save("", "abc", Record{Runtime: "/usr/sbin/runc"}); err != nil {
		t.Fatal(err)
	}
	d, p, _ := path("", "abc")
	os.Remove(p)
	fake := filepath.Join(base, "fake.json")
	os.WriteFile(fake, []byte(`{"runtime":"/tmp/evil"}`), 0o600)
	os.Symlink(fake, p)
	if _, err := Load("", "abc"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlinked record: %v", err)
	}
	os.Remove(p)
	os.WriteFile(p, []byte(`{"runtime":"runc","root":"","id":"abc"}`), 0o600)
	if _, err := Load("", "abc"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative runtime: %v", err)
	}
	// A record of another root that hashes alike is not this container's.
	os.WriteFile(p, []byte(`{"runtime":"/tmp/evil","root":"/elsewhere","id":"abc"}`), 0o600)
	if rec, err := Load("", "abc"); rec != nil || err != nil {
		t.Errorf("another root's record: %+v, %v", rec, err)
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x"} {
		if err := Save("", id, Record{Runtime: "/usr/sbin/runc"}); err == nil {
			t.Errorf("id %q recorded", id)
		}
	}
	if entries, _ := os.ReadDir(d); len(entries) != 1 {
		t.Errorf("records dir holds %v", entries)
	}
}

func TestValidIDIsRuncs(t *testing.T) {
	// runc's idRegex (libcontainer), with its path-cleaning rule that
	// refuses "." and "..".
	runc := regexp.MustCompile(`^[\w+-\.]+$`)
	for c := 0; c < 256; c++ {
		id := "a" + string(rune(c)) + "b"
		if c >= 0x80 {
			id = "a" + string([]byte{byte(c)}) + "b"
		}
		if got, want := validID(id), runc.MatchString(id); got != want {
			t.Errorf("byte %#x: validID %v, runc %v", c, got, want)
		}
	}
	for _, id := range []string{"", ".", "..", "a,b", "a/b", "x y"} {
		want := id != "" && id != "." && id != ".." && runc.MatchString(id)
		if validID(id) != want {
			t.Errorf("%q: validID %v, want %v", id, validID(id), want)
		}
	}
}
