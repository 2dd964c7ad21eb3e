package fidelity

import (
	"fmt"
	"strings"
)

// RenderMarkdown renders docs/translate-fidelity.md from Fields and
// Explanations; a test keeps the file in step with the table.
func RenderMarkdown() string {
	var b strings.Builder
	b.WriteString(`# Translation fidelity

<!-- Generated from fidelity/explained.go by RenderMarkdown; edit the table there. -->

` + "`secrunctl fidelity --captured DIR`" + ` compares, for every container of every captured Pod,
the config.json containerd handed the runtime with what ` + "`secrunctl translate`" + ` makes of
the same Pod. The capture directory holds ` + "`DIR/<namespace>/<pod>/pod.yaml`" + ` (the Pod as
applied), ` + "`DIR/<namespace>/<pod>/<container>.json`" + ` (containerd's config.json, before
secrun changes it) and optionally ` + "`_sandbox.json`" + ` (the pause container's).

Translate runs as the capture's node would: namespaces joined from the sandbox as containerd
joins them, the node's AppArmor, SELinux and cgroup hierarchy (` + "`--apparmor`, `--selinux`, `--cgroup-v2`" + `,
default: this machine's), the kubelet's ` + "`--kubernetes-version`, `--seccomp-default`" + `,
` + "`--seccomp-profile-root`" + `, and the image's files (` + "`--rootfs`" + `).

Every difference is either explained by an entry below or unexplained; an unexplained one makes
the command exit 1. ` + "`--json`" + ` prints the report as JSON.

## Fields compared

`)
	for _, f := range Fields {
		fmt.Fprintf(&b, "- `%s`\n", f)
	}
	b.WriteString(`
Sets (additional gids, capability sets, sysctls, seccomp architectures and rules, masked and
read-only paths, devices, mounts) compare as sets. Seccomp rules are normalised to one entry per
syscall name with its action, errno and argument conditions. Namespaces compare by type and by
whether they are joined by path or new; the paths name processes of one node. A random per-Pod
SELinux MCS pair compares as "a pair", and a container's pair must be its sandbox's.
Devices and mounts are compared for privileged containers only.

## Explained differences

| ID | Field | What | Why | Upstream |
|---|---|---|---|---|
`)
	for _, e := range Explanations {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", e.ID, e.Field, e.Summary, e.Reason, e.Source)
	}
	return b.String()
}
