package main

import (
	"fmt"
	"strings"

	"github.com/secrun/secrun/policy"
	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"
)

var policyCommand = &cli.Command{
	Name:  "policy",
	Usage: "list and show the policies of the secrun configuration",
	Subcommands: []*cli.Command{
		{
			Name:  "list",
			Usage: "list policies with their modes",
			Action: func(c *cli.Context) error {
				cfg, err := policy.LoadConfig()
				if err != nil {
					return err
				}
				fmt.Printf("configuration: %s\ndefault policy: %s\n", cfg.Source, cfg.DefaultPolicy)
				for _, n := range cfg.PolicyNames() {
					p, _ := cfg.Policy(n)
					fmt.Printf("  %-20s mode=%-8s runtime=%s binary=secrun-%s\n", n, p.Mode, cfg.RuntimeFor(p), n)
				}
				return nil
			},
		},
		{
			Name:      "show",
			Usage:     "print a policy's effective settings, presets resolved",
			ArgsUsage: "NAME",
			Action: func(c *cli.Context) error {
				cfg, err := policy.LoadConfig()
				if err != nil {
					return err
				}
				p, err := cfg.Policy(c.Args().First())
				if err != nil {
					return err
				}
				b, err := yaml.Marshal(p)
				if err != nil {
					return err
				}
				var names []string
				for _, r := range policy.RuleNames() {
					names = append(names, string(r))
				}
				fmt.Printf("# policy %s; rules apply in this order: %s\n%s", p.Name, strings.Join(names, ", "), b)
				return nil
			},
		},
	},
}
