package kubernetes

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// countLine is the suite's closing line, e.g. "conformance: 731 passed,
// 0 failed, 14 skipped".
var countLine = regexp.MustCompile(`(?m)^(conformance|validity): (\d+) passed, (\d+) failed, (\d+) skipped$`)

// testConformanceSuite runs the conformance suite's Kubernetes target on
// this node: every case (conformance/cases) as a real Pod through each
// secrun RuntimeClass, the same checks and expectations as the bundle
// suite, refusals read from the Pods' events; then its validity run,
// the same Pods through plain runc, where every check that depends on
// secrun's policy must fail.
func (s *suite) testConformanceSuite(t *testing.T) {
	c := s.c
	for _, validity := range []bool{false, true} {
		name := "conformance"
		args := []string{"conformance", "--target", "kubernetes",
			"--kubeconfig", c.Kubeconfig, "--kubectl", c.KubectlPath(),
			"--probe", filepath.Join(c.Dir, "probe"),
			"--import-image", fmt.Sprintf("%s --address %s --namespace k8s.io images import", c.CtrPath(), c.ContainerdSocket),
			"--seccomp-profile-root", filepath.Join(c.Dir, "kubelet", "seccomp"),
		}
		if validity {
			name = "validity"
			args = append(args, "--validity")
		}
		args = append(args, "--report-dir", filepath.Join(c.Out, name))
		start := time.Now()
		r := c.SecrunctlWithin(20*time.Minute, args...)
		m := countLine.FindStringSubmatch(r.Stdout)
		switch {
		case m == nil:
			t.Fatalf("%s: exit %d, no count line:\n%s", name, r.Code, tail(r.String(), 60))
		case r.Code != 0 || m[3] != "0" || m[2] == "0":
			t.Errorf("%s: exit %d: %s\n%s", name, r.Code, m[0], tail(r.String(), 60))
		}
		logf("%s: %s in %v (reports in %s)", s.row.Name, strings.TrimSpace(m[0]), time.Since(start).Round(time.Second), filepath.Join(c.Out, name))
		s.res.suite = append(s.res.suite, m[0])
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
