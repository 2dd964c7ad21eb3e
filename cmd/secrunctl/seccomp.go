package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"github.com/urfave/cli/v2"

	"github.com/secrun/secrun/policy"
	"github.com/secrun/secrun/seccompadvise"
	"github.com/secrun/secrun/seccompagent"
	"github.com/secrun/secrun/spec"
)

var stateFlag = &cli.StringFlag{Name: "state", Value: DefaultSeccompAgentState, Usage: "the agent's record directory (its --state)"}

var seccompCommand = &cli.Command{
	Name:  "seccomp",
	Usage: "turn the seccomp agent's records into explanations and Localhost profiles",
	Subcommands: []*cli.Command{
		{
			Name:      "why",
			Usage:     "what the container's seccomp profile blocked, how often, and what would allow it",
			ArgsUsage: "CONTAINER (a container id, NAMESPACE/POD[/CONTAINER], or a record file)",
			Description: `Reads the seccomp agent's record of the container, and secrun's audit
log for what it did to the container's filter (the profile it applied,
the agent rewrite, a refusal by the seccomp rule). Either alone is enough:
a container that ran without the agent has only the audit log's part.`,
			Flags: []cli.Flag{stateFlag,
				&cli.StringFlag{Name: "audit-log", Value: policy.DefaultAuditLog, Usage: "secrun's audit log (the configuration's auditLog); \"off\" to skip it"}},
			Action: seccompWhyAction,
		},
		{
			Name:  "profile",
			Usage: "write a Localhost seccomp profile from a record: RuntimeDefault plus exactly what the workload used",
			Description: `Writes NAME.json (OCI seccomp JSON: copy it below the kubelet's seccomp root,
/var/lib/kubelet/seccomp, and set seccompProfile {type: Localhost,
localhostProfile: NAME.json}) and NAME.seccompprofile.yaml (the
security-profiles-operator's SeccompProfile resource).

With --minimal the profile allows only what a record-all record saw.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "from-record", Required: true, Usage: "record file, container id, or NAMESPACE/POD[/CONTAINER]"},
				stateFlag,
				&cli.BoolFlag{Name: "minimal", Usage: "only what the workload used (needs a record-all record)"},
				&cli.StringFlag{Name: "base", Usage: "OCI seccomp profile to add to instead of RuntimeDefault for the record's capabilities"},
				&cli.StringFlag{Name: "name", Usage: "profile name (default secrun-<container name or id>)"},
				&cli.StringFlag{Name: "namespace", Usage: "namespace of the SeccompProfile resource (default the record's Pod namespace, else default)"},
				&cli.StringFlag{Name: "output-dir", Aliases: []string{"o"}, Value: ".", Usage: "directory for NAME.json and NAME.seccompprofile.yaml"},
			},
			Action: seccompProfileAction,
		},
	},
}

func seccompWhyAction(c *cli.Context) error {
	what := c.Args().First()
	rec, recErr := findRecord(c.String("state"), what)
	var audit []seccompadvise.AuditEntry
	if path := c.String("audit-log"); path != "off" && what != "" {
		// The record, however it was named (file, id or Pod), is of one
		// container: its id is the key. Without one, the name is.
		id := what
		if rec != nil {
			id = rec.Container
		}
		var err error
		if audit, err = seccompadvise.AuditFileFor(path, id); err != nil {
			return err
		}
	}
	if recErr != nil && len(audit) == 0 {
		return recErr
	}
	w := c.App.Writer
	if rec != nil {
		blocked, err := seccompadvise.Why(rec)
		if err != nil {
			return err
		}
		seccompadvise.WriteWhy(w, rec, blocked)
	} else {
		fmt.Fprintf(w, "container %s: no agent record (%v)\n", what, recErr)
	}
	seccompadvise.WriteAudit(w, audit)
	return nil
}

func seccompProfileAction(c *cli.Context) error {
	rec, err := findRecord(c.String("state"), c.String("from-record"))
	if err != nil {
		return err
	}
	var base *specs.LinuxSeccomp
	if f := c.String("base"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--base: %w", err)
		}
		// As secrun would load it for this container: a Docker-form
		// profile's archMap and includes/excludes.caps decided by the
		// record's capabilities, every name checked.
		caps := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: rec.Capabilities}}}
		if base, err = spec.LoadSeccompProfile(b, caps); err != nil {
			return fmt.Errorf("--base %s: %w", f, err)
		}
	}
	var prof *specs.LinuxSeccomp
	var adds []seccompadvise.Addition
	if c.Bool("minimal") {
		if base != nil {
			return fmt.Errorf("--minimal and --base exclude each other: a minimal profile starts from nothing")
		}
		prof, err = seccompadvise.Minimal(rec)
	} else {
		prof, adds, err = seccompadvise.Profile(rec, base)
	}
	if err != nil {
		return err
	}
	if dropped := seccompadvise.PruneUnknown(prof, func(n string) bool {
		_, err := libseccomp.GetSyscallFromName(n)
		return err == nil
	}); len(dropped) > 0 {
		fmt.Printf("left out %s: this machine's libseccomp does not know them (runc would skip them; secrun refuses Localhost profiles that name them)\n", strings.Join(dropped, ", "))
	}
	if err := spec.ValidateSeccomp(prof); err != nil {
		return fmt.Errorf("the generated profile: %w", err)
	}
	name := c.String("name")
	if name == "" {
		n := rec.ContainerName
		if n == "" {
			n = rec.Container
		}
		name = "secrun-" + strings.ToLower(n)
	}
	ns := c.String("namespace")
	if ns == "" {
		ns = rec.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	ociJSON, err := seccompadvise.OCIJSON(prof)
	if err != nil {
		return err
	}
	spo, err := seccompadvise.SPOYAML(prof, name, ns)
	if err != nil {
		return err
	}
	dir := c.String("output-dir")
	jsonPath, yamlPath := filepath.Join(dir, name+".json"), filepath.Join(dir, name+".seccompprofile.yaml")
	if err := os.WriteFile(jsonPath, ociJSON, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(yamlPath, spo, 0o644); err != nil {
		return err
	}
	if c.Bool("minimal") {
		fmt.Printf("minimal profile: %d syscall rules from %d recorded syscalls\n", len(prof.Syscalls), len(rec.Syscalls))
	} else if len(adds) == 0 {
		fmt.Println("the record holds nothing the base profile denies; the profile is the base")
	} else {
		fmt.Println("RuntimeDefault (or --base) plus:")
		for _, a := range adds {
			fmt.Printf("  %-16s %s\n", a.Name, a.Why)
		}
	}
	fmt.Printf("wrote %s and %s\n", jsonPath, yamlPath)
	fmt.Printf("use it: copy %s below the kubelet's seccomp root (/var/lib/kubelet/seccomp) on each node, then set\n  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: %s.json}\n", filepath.Base(jsonPath), name)
	return nil
}

// findRecord resolves what the admin named: a record file, a container
// id under dir, or NAMESPACE/POD[/CONTAINER] among dir's records.
func findRecord(dir, what string) (*seccompagent.Record, error) {
	if what == "" {
		return nil, fmt.Errorf("name a container: its id, NAMESPACE/POD[/CONTAINER], or a record file")
	}
	if fi, err := os.Stat(what); err == nil && fi.Mode().IsRegular() {
		return seccompagent.Load(what)
	}
	if p, err := seccompagent.RecordPath(dir, what); err == nil {
		if _, err := os.Stat(p); err == nil {
			return seccompagent.Load(p)
		}
	}
	ns, pod, name, ok := seccompadvise.ParsePodRef(what)
	if !ok {
		return nil, fmt.Errorf("no record for container %q in %s (is the agent's --state elsewhere? pass --state)", what, dir)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var found []*seccompagent.Record
	for _, f := range files {
		r, err := seccompagent.Load(f)
		if err != nil || r.Namespace != ns || r.Pod != pod || (name != "" && r.ContainerName != name) {
			continue
		}
		found = append(found, r)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no record for Pod %s in %s", what, dir)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, r := range found {
		names = append(names, r.ContainerName+" ("+r.Container+")")
	}
	return nil, fmt.Errorf("Pod %s has records for several containers: %s; name one as NAMESPACE/POD/CONTAINER", what, strings.Join(names, ", "))
}
