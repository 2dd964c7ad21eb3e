package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrun/secrun/policy"
	appsv1 "k8s.io/api/apps/v1"
)

// TestSeccompAgentDeployment: the DaemonSet and the systemd unit run the
// agent on the socket policies point runc at by default, keep the
// records where secrunctl seccomp why looks, and the DaemonSet mounts
// both from the host and runs the installer's image unprivileged.
func TestSeccompAgentDeployment(t *testing.T) {
	b, err := os.ReadFile("seccomp-agent/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode("seccomp-agent/daemonset.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	dss := find[*appsv1.DaemonSet](objs)
	if len(dss) != 1 || len(objs) != 1 {
		t.Fatalf("want one DaemonSet, got %d objects", len(objs))
	}
	ds := dss[0]
	if ds.Namespace != "secrun-system" || ds.Spec.Template.Spec.NodeSelector[nodeLabel] == "" {
		t.Errorf("namespace %q, node selector %v", ds.Namespace, ds.Spec.Template.Spec.NodeSelector)
	}
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers", len(cs))
	}
	c := cs[0]
	flag := func(args []string, name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	sock, state := flag(c.Command, "--socket"), flag(c.Command, "--state")
	if sock != policy.DefaultSeccompAgentSocket || state != "/var/lib/secrun/seccomp-agent" || !slices.Contains(c.Command, "seccomp-agent") {
		t.Errorf("command %v", c.Command)
	}
	mounted := func(p string) bool {
		for _, m := range c.VolumeMounts {
			for _, v := range ds.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.HostPath != nil && v.HostPath.Path == m.MountPath && (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) {
					return true
				}
			}
		}
		return false
	}
	if !mounted(sock) || !mounted(state) {
		t.Errorf("the socket %s and the records %s must be the host's (hostPath at the same path)", sock, state)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("the agent needs no privilege: securityContext %+v", sc)
	}
	installer := installContainer(t, daemonSet(t, loadAll(t))).Image
	if c.Image != installer {
		t.Errorf("the agent runs %s, the installer %s: one image (deploy/Dockerfile)", c.Image, installer)
	}

	unit, err := os.ReadFile(filepath.Join("seccomp-agent", "secrun-seccomp-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	var exec []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = strings.Fields(v)
		}
	}
	if flag(exec, "--socket") != sock || flag(exec, "--state") != state || !strings.HasSuffix(exec[0], "/secrunctl") {
		t.Errorf("unit ExecStart %v runs another socket or state than the DaemonSet", exec)
	}
}
