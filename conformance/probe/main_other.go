//go:build !linux

// Command probe only works on Linux; this stub keeps `go build ./...` and
// `go vet ./...` working on other platforms.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "probe: only supported on linux")
	os.Exit(2)
}
