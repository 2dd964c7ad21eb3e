package main

import "github.com/urfave/cli/v2"

var seccompCommand = &cli.Command{
	Name:        "seccomp",
	Usage:       "turn the seccomp agent's records into answers and profiles",
	Subcommands: []*cli.Command{},
}
