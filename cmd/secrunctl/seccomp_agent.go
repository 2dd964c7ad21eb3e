package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/seccompagent"
	"github.com/urfave/cli/v2"
)

// DefaultSeccompAgentState is where the agent keeps its records.
const DefaultSeccompAgentState = "/var/lib/secrun/seccomp-agent"

var seccompAgentCommand = &cli.Command{
	Name:  "seccomp-agent",
	Usage: "serve seccomp user notifications: record or explain what containers' profiles deny",
	Description: `runc hands the agent each container's notify fd when secrun's policy sets
seccompAgent (or a Pod asks by annotation). In record mode the agent lets
every call the profile denies run; in explain mode it answers with the
profile's errno. Either way it records each syscall per container in
--state/<container id>.json, which 'secrunctl seccomp why' and
'secrunctl seccomp profile --from-record' read.

SIGTERM or SIGINT stop it gracefully: records are written and the notify
fds closed, after which the kernel answers the containers' notified calls
with ENOSYS.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "socket", Value: policy.DefaultSeccompAgentSocket, Usage: "unix socket runc connects to (the policy's seccompAgent.socket)"},
		&cli.StringFlag{Name: "state", Value: DefaultSeccompAgentState, Usage: "directory for the per-container records"},
		&cli.DurationFlag{Name: "flush-interval", Value: 0, Usage: "longest time a count stays unwritten (default 1s; a new syscall is written at once)"},
	},
	Action: func(c *cli.Context) error {
		a, err := seccompagent.Listen(seccompagent.Config{
			Socket: c.String("socket"), StateDir: c.String("state"), Log: os.Stderr, FlushInterval: c.Duration("flush-interval"),
		})
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		fmt.Fprintf(os.Stderr, "seccomp-agent: listening on %s, records in %s\n", c.String("socket"), c.String("state"))
		err = a.Serve(ctx)
		fmt.Fprintln(os.Stderr, "seccomp-agent: stopped; records written")
		return err
	},
}
