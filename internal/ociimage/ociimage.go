// Package ociimage writes container images as an OCI image layout in a
// tar archive, the form `ctr images import` reads: no registry, no
// network, no Docker engine. The same files give the same bytes, and so
// the same digests, every time (fixed timestamps, sorted blobs, a gzip
// header without name or time), so a reference can be derived from the
// content and a node that already holds it is known to hold exactly it.
//
// The layout follows the OCI image spec (image-layout.md, manifest.md,
// config.md); containerd names an imported image after the
// io.containerd.image.name annotation of its index entry
// (containerd core/images/archive/importer.go).
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"time"
)

// Epoch is every timestamp in an archive, so that its digests depend on
// the content only.
var Epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of the image's single layer.
type File struct {
	// Name has no leading slash; a directory's ends in "/".
	Name string
	// Mode holds the permission, setuid, setgid and sticky bits.
	Mode     int64
	UID, GID int
	Body     []byte
}

// Image is one image of an archive. All images of an archive share its
// one layer.
type Image struct {
	// Ref is the full reference, e.g. secrun.local/probe:0123abcd.
	Ref        string
	Entrypoint []string
	Cmd        []string
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is a descriptor's platform. containerd 2.x imports and
// unpacks for the host's platform; an index entry that names one is
// matched without reading the image config.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Media types of the layout.
const (
	MediaIndex    = "application/vnd.oci.image.index.v1+json"
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// RefAnnotation names an imported image in containerd.
const RefAnnotation = "io.containerd.image.name"

// Archive returns a tar of an OCI image layout holding images, each a
// manifest over the one layer made of files, for the running program's
// architecture.
func Archive(files []File, images []Image) ([]byte, error) {
	layer, diffID, err := Layer(files)
	if err != nil {
		return nil, err
	}
	blobs := map[string][]byte{}
	add := func(mediaType string, b []byte) Descriptor {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return Descriptor{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	layerDesc := add(MediaLayer, layer)
	platform := &Platform{Architecture: runtime.GOARCH, OS: "linux"}
	var manifests []Descriptor
	for _, im := range images {
		cfg, err := json.Marshal(map[string]any{
			"created":      Epoch,
			"architecture": platform.Architecture,
			"os":           platform.OS,
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
			"mediaType":     MediaManifest,
			"config":        add(MediaConfig, cfg),
			"layers":        []Descriptor{layerDesc},
		})
		if err != nil {
			return nil, err
		}
		d := add(MediaManifest, man)
		d.Platform = platform
		d.Annotations = map[string]string{RefAnnotation: im.Ref}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": manifests})
	if err != nil {
		return nil, err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: Epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
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

// Layer returns the gzipped layer of files and the digest of its
// uncompressed tar (the image config's diff_id).
func Layer(files []File) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		if f.Name == "" {
			return nil, "", fmt.Errorf("layer entry without a name")
		}
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: Epoch, Format: tar.FormatPAX}
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
	// BestSpeed: a layer holds two copies of a static probe and is built
	// on every test start.
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
