package spec

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/secrun/secrun/spec/spectest"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithAppArmorRuntimeDefault(t *testing.T) {
	tests := []struct {
		name        string
		host        *spectest.AppArmor
		wantProfile string
		wantWarn    string
		wantLoads   int
		errHas      string
	}{
		{name: "loads the default once and applies it", host: spectest.NewAppArmor(true),
			wantProfile: DefaultAppArmorProfile, wantLoads: 1},
		{name: "already loaded", host: spectest.NewAppArmor(true, DefaultAppArmorProfile),
			wantProfile: DefaultAppArmorProfile},
		{name: "kernel without AppArmor: skipped with a warning", host: spectest.NewAppArmor(false),
			wantWarn: "AppArmor is not enabled in this kernel"},
		{name: "load fails", host: &spectest.AppArmor{On: true, Loaded: map[string]bool{}, LoadErr: errors.New("apparmor_parser: exit 1")},
			errHas: "appArmorProfile RuntimeDefault: apparmor_parser: exit 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warns []string
			s := &specs.Spec{}
			err := WithAppArmorRuntimeDefault(tt.host, func(m string) { warns = append(warns, m) })(s)
			if spectest.ErrorCase(t, err, tt.errHas) {
				return
			}
			got := ""
			if s.Process != nil {
				got = s.Process.ApparmorProfile
			}
			if got != tt.wantProfile {
				t.Errorf("profile = %q, want %q", got, tt.wantProfile)
			}
			if tt.wantWarn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tt.wantWarn)) {
				t.Errorf("warnings = %q, want one containing %q", warns, tt.wantWarn)
			}
			if tt.wantWarn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
			if tt.host.Loads != tt.wantLoads {
				t.Errorf("loads = %d, want %d", tt.host.Loads, tt.wantLoads)
			}
		})
	}
}

func TestWithAppArmorRuntimeDefaultConcurrent(t *testing.T) {
	h := spectest.NewAppArmor(true)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := WithAppArmorRuntimeDefault(h, nil)(&specs.Spec{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if h.Loads != 1 {
		t.Fatalf("the default profile was loaded %d times", h.Loads)
	}
}

func TestWithAppArmorLocalhost(t *testing.T) {
	tests := []struct {
		name, profile string
		host          *spectest.AppArmor
		errHas        string
	}{
		{name: "loaded profile applies", profile: "k8s-deny-write", host: spectest.NewAppArmor(true, "k8s-deny-write")},
		{name: "not loaded", profile: "k8s-deny-write", host: spectest.NewAppArmor(true), errHas: "no profile of that name is loaded on this node"},
		{name: "kernel without AppArmor", profile: "k8s-deny-write", host: spectest.NewAppArmor(false, "k8s-deny-write"), errHas: "AppArmor is not enabled in this kernel"},
		{name: "empty name", profile: "", host: spectest.NewAppArmor(true), errHas: "is not a valid profile name"},
		{name: "newline in name", profile: "a\nb", host: spectest.NewAppArmor(true), errHas: "is not a valid profile name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &specs.Spec{}
			err := WithAppArmorLocalhost(tt.host, tt.profile)(s)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want %q", err, tt.errHas)
				}
				if s.Process != nil && s.Process.ApparmorProfile != "" {
					t.Fatal("a refused profile was set")
				}
				return
			}
			if err != nil || s.Process.ApparmorProfile != tt.profile {
				t.Fatalf("err %v, profile %q", err, s.Process.ApparmorProfile)
			}
		})
	}
}

func TestWithAppArmorUnconfined(t *testing.T) {
	s := &specs.Spec{Process: &specs.Process{ApparmorProfile: "x"}}
	if err := WithAppArmorUnconfined()(s); err != nil || s.Process.ApparmorProfile != "" {
		t.Fatalf("err %v, profile %q", err, s.Process.ApparmorProfile)
	}
	if err := WithAppArmorUnconfined()(&specs.Spec{}); err != nil {
		t.Fatal(err)
	}
}

func TestHostAppArmorEnabledMatchesKernel(t *testing.T) {
	_, err := os.Stat("/sys/kernel/security/apparmor")
	if err != nil && (HostAppArmor{}).Enabled() {
		t.Fatal("Enabled() is true on a kernel without /sys/kernel/security/apparmor")
	}
}
