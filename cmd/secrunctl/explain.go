package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/secrun/secrun/bundle"
	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/runccheck"
	"github.com/secrun/secrun/spec"
	"github.com/urfave/cli/v2"
)

var explainCommand = &cli.Command{
	Name:      "explain",
	Usage:     "show what secrun would change or refuse in a bundle, without running anything",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "policy name (default: the config's defaultPolicy)"},
		&cli.StringFlag{Name: "mode", Usage: "override the policy's mode: enforce, harden or audit"},
		&cli.BoolFlag{Name: "json", Usage: "print the outcome as JSON"},
		&cli.BoolFlag{Name: "config-json", Usage: "print the config.json secrun would write"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("explain needs exactly one BUNDLE directory")
		}
		cfg, pol, err := selectedPolicy(c)
		if err != nil {
			return err
		}
		doc, err := bundle.Load[specs.Spec](filepath.Join(c.Args().First(), "config.json"))
		if err != nil {
			return err
		}
		dir, err := filepath.Abs(c.Args().First())
		if err != nil {
			return err
		}
		env := &policy.Env{AppArmor: spec.HostAppArmor{}, SeccompProfileRoot: cfg.SeccompProfileRoot, BundleDir: dir}
		out := pol.Decide(env, doc.Value)
		// What secrun would hand runc, checked as runc's create checks it.
		var runc *runcVerdict
		if !out.Refused() {
			runc = checkWithRunc(c.Args().First(), doc.Value)
		}
		if c.Bool("config-json") {
			b, err := doc.Marshal()
			if err != nil {
				return err
			}
			fmt.Println(string(b))
			return nil
		}
		if c.Bool("json") {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{
				"policy": pol.Name, "mode": pol.Mode, "decision": out.Decision,
				"changes": out.Changes, "findings": out.Findings, "warnings": out.Warnings,
				"error": out.Error(), "runc": runc,
			}); err != nil {
				return err
			}
			return runc.exit(refusedExit(out))
		}
		fmt.Printf("policy %s (%s): %s\n", pol.Name, pol.Mode, out.Decision)
		if out.Err != nil {
			fmt.Printf("  refused: %v\n", out.Err)
		}
		for _, ch := range out.Changes {
			fmt.Printf("  change:  %s\n", ch)
		}
		for _, f := range out.Findings {
			fmt.Printf("  finding: %s\n", f)
		}
		for _, w := range out.Warnings {
			fmt.Printf("  warning: %s\n", w)
		}
		runc.print()
		return runc.exit(refusedExit(out))
	},
}

// refusedExit gives a refusal its own exit status, 3, so scripts can tell
// "the policy says no" from a failure to run.
func refusedExit(out *policy.Outcome) error {
	if out.Refused() {
		return cli.Exit("", 3)
	}
	return nil
}

// selectedPolicy loads the secrun configuration and the policy named by
// --policy (default: the configuration's defaultPolicy), with --mode
// overriding its mode when given.
func selectedPolicy(c *cli.Context) (*policy.Config, *policy.Policy, error) {
	cfg, err := policy.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	name := c.String("policy")
	if name == "" {
		name = cfg.DefaultPolicy
	}
	pol, err := cfg.Policy(name)
	if err != nil {
		return nil, nil, err
	}
	if m := c.String("mode"); m != "" {
		cp := *pol
		cp.Mode = policy.Mode(m)
		if err := cp.Validate(); err != nil {
			return nil, nil, err
		}
		pol = &cp
	}
	return cfg, pol, nil
}

// runcVerdict is runccheck's answer on the config secrun would write.
type runcVerdict struct {
	Accepted bool     `json:"accepted"`
	Field    string   `json:"field,omitempty"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// RootfsMissing: the bundle has no rootfs yet, which runc refuses.
	RootfsMissing bool `json:"rootfsMissing,omitempty"`
}

func checkWithRunc(bundleDir string, s *specs.Spec) *runcVerdict {
	res, err := runccheck.Check(bundleDir, s)
	v := &runcVerdict{Accepted: err == nil}
	if res != nil {
		v.Warnings, v.RootfsMissing = res.Warnings, res.RootfsMissing
	}
	var p *runccheck.Problem
	switch {
	case errors.As(err, &p):
		v.Field, v.Error = p.Field, err.Error()
	case err != nil:
		v.Error = "could not check with runc's rules: " + err.Error()
	}
	return v
}

func (v *runcVerdict) print() {
	switch {
	case v == nil:
	case !v.Accepted:
		fmt.Printf("  runc:    %s\n", v.Error)
	case v.RootfsMissing:
		fmt.Println("  runc:    accepts the config; the bundle has no rootfs yet, which runc refuses until it exists")
	default:
		fmt.Println("  runc:    accepts the config")
	}
	if v != nil {
		for _, w := range v.Warnings {
			fmt.Printf("  warning: %s\n", w)
		}
	}
}

// exit is 3 when runc would refuse what secrun writes: the container
// would not start, as if refused.
func (v *runcVerdict) exit(prev error) error {
	if prev == nil && v != nil && !v.Accepted {
		return cli.Exit("", 3)
	}
	return prev
}
