// Command secrun is a runc-compatible OCI runtime that applies the node's
// security policy to a bundle and then execs the real runtime. Install it
// (or a secrun-<policy> link to it) as a containerd runtime handler's
// BinaryName; see the README.
package main

import (
	"os"

	"github.com/secrun/secrun/shim"
)

func main() {
	os.Exit(shim.Main(os.Args, os.Stderr))
}
