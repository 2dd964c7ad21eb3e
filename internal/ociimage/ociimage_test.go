package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"
)

// The archive is checked without containerd: deterministic, every blob
// named by its digest, the index naming each image and its platform, the
// layer keeping setuid bits and owners.
func TestArchive(t *testing.T) {
	files := []File{
		{Name: "etc/", Mode: 0o755},
		{Name: "probe", Mode: 0o755, Body: []byte("#!probe")},
		{Name: "probe-suid", Mode: 0o4755, Body: []byte("#!probe")},
		{Name: "foreign", Mode: 0o644, UID: 1234, GID: 1234},
	}
	images := []Image{{Ref: "localhost/x/probe:1", Cmd: []string{"/probe"}}, {Ref: "localhost/x/pause:1", Entrypoint: []string{"/pause"}}}
	a, err := Archive(files, images)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Archive(files, images)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same archive differ")
	}
	entries := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name], _ = io.ReadAll(tr)
	}
	for name, body := range entries {
		if hexd, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			sum := sha256.Sum256(body)
			if hex.EncodeToString(sum[:]) != hexd {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
	var index struct{ Manifests []Descriptor }
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[0].Annotations[RefAnnotation] != "localhost/x/probe:1" {
		t.Fatalf("index: %+v", index)
	}
	if p := index.Manifests[0].Platform; p == nil || p.OS != "linux" || p.Architecture != runtime.GOARCH {
		t.Errorf("index entry platform %+v", p)
	}
	var man struct{ Layers []Descriptor }
	if err := json.Unmarshal(entries["blobs/sha256/"+index.Manifests[0].Digest[7:]], &man); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(entries["blobs/sha256/"+man.Layers[0].Digest[7:]]))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	lr := tar.NewReader(zr)
	for {
		h, err := lr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h
	}
	if h := got["probe-suid"]; h == nil || h.Mode&0o4000 == 0 || h.Uid != 0 {
		t.Errorf("probe-suid lost its setuid-root mode: %+v", h)
	}
	if h := got["foreign"]; h == nil || h.Uid != 1234 || h.Gid != 1234 {
		t.Errorf("foreign lost its owner: %+v", h)
	}
	if _, _, err := Layer([]File{{Mode: 0o644}}); err == nil {
		t.Error("a nameless entry was accepted")
	}
}
