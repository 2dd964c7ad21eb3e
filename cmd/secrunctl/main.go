// Command secrunctl is secrun's tool for admins and CI: it explains what
// a policy does to a bundle, shows policies, translates Kubernetes
// manifests to OCI bundles and runs the conformance suite. Everything that
// may be slow or heavy lives here, never in the secrun wrapper.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "secrunctl",
		Usage: "inspect and test secrun, the policy-enforcing OCI runtime wrapper",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "secrun configuration file (default $SECRUN_CONFIG or /etc/secrun/config.yaml)"},
		},
		Before: func(c *cli.Context) error {
			if p := c.String("config"); p != "" {
				return os.Setenv("SECRUN_CONFIG", p)
			}
			return nil
		},
		Commands: []*cli.Command{
			explainCommand,
			translateCommand, checkCommand,
			policyCommand,
			benchCommand,
			installCommand,
			conformanceCommand,
			fidelityCommand,
			seccompAgentCommand, seccompCommand,
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "secrunctl:", err)
		os.Exit(1)
	}
}
