package containerd

import "github.com/secrun/secrun/internal/ociimage"

// The tests run images built here, in an OCI image layout archive that
// `ctr images import` reads: no registry, no network, and the same bytes
// (so the same digests) every time the same binaries go in. The writer
// is package ociimage, which the conformance suite's Kubernetes target
// builds its probe image with too.

type (
	layerFile = ociimage.File
	ociImage  = ociimage.Image
)

func ociArchive(files []layerFile, images []ociImage) ([]byte, error) {
	return ociimage.Archive(files, images)
}
