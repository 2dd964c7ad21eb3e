package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/secrun/secrun/fidelity"
	"github.com/secrun/secrun/spec"
	"github.com/urfave/cli/v2"
)

var fidelityCommand = &cli.Command{
	Name:  "fidelity",
	Usage: "compare the config.json containerd wrote for each captured container with translate's",
	Description: `fidelity reads DIR/<namespace>/<pod>/pod.yaml (the Pod as applied) and
DIR/<namespace>/<pod>/<container>.json (the config.json containerd handed the
runtime; _sandbox.json for the pause container), translates each Pod as
translate would on that node, and compares every security field: user and
groups, the five capability sets, noNewPrivileges, root.readonly, sysctls,
seccomp (default action, architectures, rules), AppArmor, SELinux, masked
and read-only paths, namespaces, and devices and mounts for privileged
containers.

Each difference is explained (a known, documented choice of translate:
docs/translate-fidelity.md) or unexplained. Exit status 1 when any is
unexplained.`,
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "captured", Required: true, Usage: "capture directory: <namespace>/<pod>/{pod.yaml,<container>.json}"},
		&cli.StringFlag{Name: "kubernetes-version", Usage: "the kubelet's Kubernetes version, e.g. 1.37 (default: the newest known)"},
		&cli.StringFlag{Name: "rootfs", Usage: "the image's root filesystem, for users and groups named in its /etc/passwd and /etc/group"},
		&cli.StringFlag{Name: "image-user", Usage: "the image's USER, for containers without runAsUser"},
		&cli.StringSliceFlag{Name: "allowed-unsafe-sysctls", Usage: "the kubelet's --allowed-unsafe-sysctls"},
		&cli.StringFlag{Name: "seccomp-profile-root", Usage: "the kubelet's Localhost seccomp profile directory (default " + spec.DefaultSeccompProfileRoot + ")"},
		&cli.BoolFlag{Name: "seccomp-default", Usage: "the kubelet ran with --seccomp-default"},
		&cli.BoolFlag{Name: "apparmor", Usage: "the node has AppArmor (default: whether this machine has)"},
		&cli.BoolFlag{Name: "selinux", Usage: "the node has SELinux (default: whether this machine has)"},
		&cli.BoolFlag{Name: "cgroup-v2", Usage: "the node runs the unified cgroup hierarchy (default: whether this machine does)"},
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
	},
	Action: runFidelity,
}

func runFidelity(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("fidelity takes no arguments (got %q); name the capture directory with --captured", c.Args().Slice())
	}
	dir := c.String("captured")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--captured %s: not a directory", dir)
	}
	o := fidelity.Options{
		KubernetesVersion:    c.String("kubernetes-version"),
		AllowedUnsafeSysctls: c.StringSlice("allowed-unsafe-sysctls"),
		SeccompProfileRoot:   c.String("seccomp-profile-root"),
		SeccompDefault:       c.Bool("seccomp-default"),
		ImageUser:            c.String("image-user"),
		Node: fidelity.Node{
			AppArmor: spec.HostAppArmor{}.Enabled(),
			SELinux:  spec.SELinuxEnabled(),
			CgroupV2: unifiedCgroups(),
		},
	}
	if c.IsSet("apparmor") {
		o.Node.AppArmor = c.Bool("apparmor")
	}
	if c.IsSet("selinux") {
		o.Node.SELinux = c.Bool("selinux")
	}
	if c.IsSet("cgroup-v2") {
		o.Node.CgroupV2 = c.Bool("cgroup-v2")
	}
	if r := c.String("rootfs"); r != "" {
		abs, err := filepath.Abs(r)
		if err != nil {
			return err
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return fmt.Errorf("--rootfs %s: not a directory", r)
		}
		o.Rootfs = abs
	}
	pol := spec.SysctlPolicy{KubernetesVersion: o.KubernetesVersion, AllowedUnsafe: o.AllowedUnsafeSysctls}
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("--kubernetes-version / --allowed-unsafe-sysctls: %w", err)
	}
	rep, err := fidelity.Run(dir, o)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printFidelity(c, rep)
	}
	if rep.Unexplained > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

func printFidelity(c *cli.Context, rep *fidelity.Report) {
	out := c.App.Writer
	for _, r := range rep.Containers {
		where := r.Namespace + "/" + r.Pod
		if r.Container != "" {
			where += " container " + r.Container
		}
		if r.Path != "" {
			where += " (" + r.Path + ")"
		}
		if r.Error != "" {
			fmt.Fprintf(out, "%s: not compared: %s\n", where, r.Error)
			continue
		}
		fmt.Fprintf(out, "%s: %d differences, %d explained, %d unexplained\n", where, len(r.Differences), r.Explained, r.Unexplained)
		for _, d := range r.Differences {
			verb := "UNEXPLAINED"
			if d.Explained() {
				verb = "explained  "
			}
			line := fmt.Sprintf("  %s %s: containerd %s; translate %s", verb, d.Field, d.Captured, d.Translated)
			if d.Explained() {
				line += fmt.Sprintf(" [%s: %s]", d.Explanation, d.Reason)
			}
			fmt.Fprintln(out, line)
		}
	}
	for _, n := range rep.NotCaptured {
		fmt.Fprintf(out, "%s: no capture (not compared)\n", n)
	}
	fmt.Fprintf(out, "fidelity: %d containers compared, %d explained differences, %d unexplained\n", len(rep.Containers), rep.Explained, rep.Unexplained)
}

// unifiedCgroups reports whether this machine mounts cgroup v2 at
// /sys/fs/cgroup, the test containerd makes (isUnifiedCgroupsMode).
func unifiedCgroups() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}
