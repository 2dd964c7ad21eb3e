package conformance

import (
	"fmt"
	"os"
	"strings"

	"github.com/secrun/secrun/internal/ociimage"
)

// The Kubernetes target's probe image holds what makeRootfs puts into a
// bundle's rootfs, as one image layer: the static probe, its setuid-root
// copy, /etc/passwd and /etc/group from the tables in model.go, the file
// the Localhost AppArmor profile denies, and a file of a foreign owner
// for cap.fowner (a Pod's scratch emptyDir is root's, where the bundle
// suite's tmpfs belongs to scratchOwner).

// ProbeImageRepository is the repository of the probe image; the tag is
// the start of the layer's digest, so that it changes exactly when the
// probe does and a node that holds the tag holds this probe.
const ProbeImageRepository = "secrun.local/probe"

// foreignPath is the image's file owned by scratchOwner.
const foreignPath = "/secrun-foreign"

// ProbeImage is the probe image as an OCI archive for `ctr images import`.
type ProbeImage struct {
	Ref     string
	Archive []byte
}

// BuildProbeImage builds the probe image around the static probe at
// probePath.
func BuildProbeImage(probePath string) (*ProbeImage, error) {
	if err := checkStatic(probePath); err != nil {
		return nil, err
	}
	probe, err := os.ReadFile(probePath)
	if err != nil {
		return nil, fmt.Errorf("probe image: %w", err)
	}
	files := probeImageFiles(probe)
	_, diffID, err := ociimage.Layer(files)
	if err != nil {
		return nil, fmt.Errorf("probe image layer: %w", err)
	}
	ref := ProbeImageRepository + ":" + strings.TrimPrefix(diffID, "sha256:")[:12]
	archive, err := ociimage.Archive(files, []ociimage.Image{{Ref: ref, Entrypoint: []string{"/probe"}}})
	if err != nil {
		return nil, fmt.Errorf("probe image archive: %w", err)
	}
	return &ProbeImage{Ref: ref, Archive: archive}, nil
}

func probeImageFiles(probe []byte) []ociimage.File {
	return []ociimage.File{
		{Name: "dev/", Mode: 0o755},
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/group", Mode: 0o644, Body: []byte(groupFile())},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte(passwdFile())},
		{Name: "probe", Mode: 0o755, Body: probe},
		{Name: "probe-suid", Mode: 0o4755, Body: probe},
		{Name: "proc/", Mode: 0o755},
		{Name: strings.TrimPrefix(appArmorDenyPath, "/"), Mode: 0o666},
		{Name: strings.TrimPrefix(foreignPath, "/"), Mode: 0o644, UID: scratchOwner, GID: scratchOwner},
		{Name: "sys/", Mode: 0o755},
		{Name: "tmp/", Mode: 0o1777},
	}
}
