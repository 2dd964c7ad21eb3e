package containerd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// The tests run images built here, in an OCI image layout archive that
// `ctr images import` reads: no registry, no network, and the same bytes
// (so the same digests) every time the same binaries go in.

// epoch is every timestamp in the archive, so that its digests depend on
// the content only.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// layerFile is one entry of an image layer.
type layerFile struct {
	Name string // without a leading slash; directories end in "/"
	Mode int64  // permission and setuid bits
	UID  int
	Body []byte
}

// ociImage is one image of the archive. All images share one layer.
type ociImage struct {
	Ref        string // full reference, e.g. localhost/secrun-test/probe:1
	Entrypoint []string
	Cmd        []string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// ociArchive returns a tar of an OCI image layout holding images, each a
// manifest over the one layer made of files. containerd names an imported
// image by the io.containerd.image.name annotation of its index entry.
func ociArchive(files []layerFile, images []ociImage) ([]byte, error) {
	layer, diffID, err := buildLayer(files)
	if err != nil {
		return nil, err
	}
	blobs := map[string][]byte{}
	add := func(mediaType string, b []byte) descriptor {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return descriptor{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	layerDesc := add(mediaLayer, layer)
	var manifests []descriptor
	for _, im := range images {
		cfg, err := json.Marshal(map[string]any{
			"created":      epoch,
			"architecture": runtime.GOARCH,
			"os":           "linux",
			"config": map[string]any{
				"Env":        []string{"PATH=/"},
				"Entrypoint": im.Entrypoint,
				"Cmd":        im.Cmd,
				"WorkingDir": "/",
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		})
		if err != nil {
			return nil, err
		}
		man, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaManifest,
			"config":        add(mediaConfig, cfg),
			"layers":        []descriptor{layerDesc},
		})
		if err != nil {
			return nil, err
		}
		d := add(mediaManifest, man)
		d.Annotations = map[string]string{"io.containerd.image.name": im.Ref}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": manifests})
	if err != nil {
		return nil, err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := put("index.json", index); err != nil {
		return nil, err
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		if err := put("blobs/sha256/"+d[len("sha256:"):], blobs[d]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// buildLayer returns the gzipped layer and the digest of its uncompressed
// tar (the image config's diff_id).
func buildLayer(files []layerFile) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.UID, ModTime: epoch, Format: tar.FormatPAX}
		if f.Name[len(f.Name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", fmt.Errorf("layer entry %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Body); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(raw.Bytes())
	var gz bytes.Buffer
	// BestSpeed: the layer holds two copies of the probe, and this runs
	// on every test start. The gzip header has no name and no time.
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// TestOCIArchive checks the archive without containerd: deterministic,
// every blob named by its digest, the index naming each image.
func TestOCIArchive(t *testing.T) {
	files := []layerFile{{Name: "etc/", Mode: 0o755}, {Name: "probe", Mode: 0o755, Body: []byte("#!probe")}, {Name: "probe-suid", Mode: 0o4755, Body: []byte("#!probe")}}
	images := []ociImage{{Ref: "localhost/x/probe:1", Cmd: []string{"/probe"}}, {Ref: "localhost/x/pause:1", Entrypoint: []string{"/pause"}}}
	a, err := ociArchive(files, images)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ociArchive(files, images)
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
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[0].Annotations["io.containerd.image.name"] != "localhost/x/probe:1" {
		t.Fatalf("index: %+v", index)
	}
	var man struct{ Layers []descriptor }
	json.Unmarshal(entries["blobs/sha256/"+index.Manifests[0].Digest[7:]], &man)
	zr, err := gzip.NewReader(bytes.NewReader(entries["blobs/sha256/"+man.Layers[0].Digest[7:]]))
	if err != nil {
		t.Fatal(err)
	}
	lr := tar.NewReader(zr)
	var suid *tar.Header
	for {
		h, err := lr.Next()
		if err != nil {
			break
		}
		if h.Name == "probe-suid" {
			suid = h
		}
	}
	if suid == nil || suid.Mode&0o4000 == 0 || suid.Uid != 0 {
		t.Errorf("probe-suid lost its setuid-root mode: %+v", suid)
	}
}
