// Command pause is the sandbox process of the containerd integration
// tests' Pods: it waits for a signal and exits. It stands in for
// registry.k8s.io/pause because the tests pull nothing from a registry; it
// handles SIGTERM and SIGINT itself because as PID 1 of its container the
// kernel would ignore them otherwise.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
}
