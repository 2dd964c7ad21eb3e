// Command secrun is a runc-compatible OCI runtime that applies the node's
// security policy to a bundle and then execs the real runtime. Install it
// (or a secrun-<policy> link to it) as a containerd runtime handler's
// BinaryName; see the README.
package main

import (
	"os"
	"runtime/debug"

	"github.com/secrun/secrun/shim"
)

func main() {
	// secrun lives for a few milliseconds and allocates well under a
	// megabyte before it execs the runtime: a collection would only cost
	// time on every container start.
	debug.SetGCPercent(-1)
	os.Exit(shim.Main(os.Args, os.Stderr))
}
