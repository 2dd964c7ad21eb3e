package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func verifyResult(checks ...CheckResult) *Result {
	r := &Result{Mode: "conformance", Host: HostInfo{AppArmor: true}, Containers: []ContainerResult{{Case: "c", Checks: checks}}}
	for _, c := range checks {
		switch c.Status {
		case StatusPass:
			r.Passed++
		case StatusFail:
			r.Failed++
		case StatusSkip:
			r.Skipped++
		}
	}
	return r
}

func TestVerify(t *testing.T) {
	aa := CheckResult{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusPass}
	chown := CheckResult{ID: "c/app/cap.chown", Setting: SettingCapabilities, Status: StatusPass}
	apparmor := []Setting{SettingAppArmor}
	for _, tc := range []struct {
		name    string
		r       *Result
		require []Setting
		want    string // substring of the error; "" means it verifies
	}{
		{"all passed", verifyResult(aa, chown), apparmor, ""},
		{"failed check", verifyResult(aa, CheckResult{ID: "c/app/cap.chown", Setting: SettingCapabilities, Status: StatusFail}), nil, "1 checks failed: c/app/cap.chown"},
		{"apparmor skipped", verifyResult(chown, CheckResult{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusSkip, Message: reasonNoAppArmor}), apparmor, "apparmor is required but 1 of its checks skipped"},
		{"skip allowed when not required", verifyResult(chown, CheckResult{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusSkip}), nil, ""},
		{"apparmor absent", verifyResult(chown), apparmor, "has no apparmor check"},
		{"no checks", verifyResult(), nil, "lists no checks"},
		{"counts damaged", func() *Result { r := verifyResult(aa, chown); r.Passed = 5; return r }(), nil, "the report is damaged"},
		{"node without AppArmor", func() *Result { r := verifyResult(aa, chown); r.Host.AppArmor = false; return r }(), apparmor, "node had no AppArmor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Verify(tc.require)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Verify: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadResultRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := verifyResult(CheckResult{ID: "c/app/apparmor.label", Setting: SettingAppArmor, Status: StatusPass})
	if err := r.WriteReports(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify([]Setting{SettingAppArmor}); err != nil {
		t.Fatalf("a written report does not verify: %v", err)
	}
	bad := filepath.Join(dir, "other.json")
	if err := os.WriteFile(bad, []byte(`{"mode":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResult(bad); err == nil || !strings.Contains(err.Error(), "neither conformance nor validity") {
		t.Fatalf("ReadResult of a foreign file: %v", err)
	}
}

func TestParseSettings(t *testing.T) {
	if s, err := ParseSettings("apparmor, seccomp"); err != nil || len(s) != 2 || s[0] != SettingAppArmor {
		t.Fatalf("ParseSettings: %v %v", s, err)
	}
	if _, err := ParseSettings("aparmor"); err == nil || !strings.Contains(err.Error(), "did you mean apparmor?") {
		t.Fatalf("ParseSettings typo: %v", err)
	}
}
