// Command goexec only execs the delegate ($BENCH_DELEGATE) with its own
// arguments: the floor of any Go runtime wrapper. See package benchpeers.
package main

import (
	"os"
	"syscall"
)

func main() {
	err := syscall.Exec(os.Getenv("BENCH_DELEGATE"), os.Args, os.Environ())
	os.Stderr.WriteString("goexec: " + err.Error() + "\n")
	os.Exit(1)
}
