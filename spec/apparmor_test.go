package spec

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeAppArmor is a node's AppArmor as the tests need it: on or off, some
// profiles loaded, a loader that may fail.
type fakeAppArmor struct {
	mu      sync.Mutex
	enabled bool
	loaded  map[string]bool
	loadErr error
	loads   int
}

func newFakeAppArmor(enabled bool, loaded ...string) *fakeAppArmor {
	f := &fakeAppArmor{enabled: enabled, loaded: map[string]bool{}}
	for _, l := range loaded {
		f.loaded[l] = true
	}
	return f
}

func (f *fakeAppArmor) Enabled() bool { return f.enabled }

func (f *fakeAppArmor) IsLoaded(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loaded[name], nil
}

func (f *fakeAppArmor) LoadDefault(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loadErr != nil {
		return f.loadErr
	}
	if !f.loaded[name] {
		f.loads++
		f.loaded[name] = true
	}
	return nil
}

func TestWithAppArmorRuntimeDefault(t *testing.T) {
	tests := []struct {
		name        string
		host        *fakeAppArmor
		wantProfile string
		wantWarn    string
		wantLoads   int
		errHas      string
	}{
		{name: "loads the default once and applies it", host: newFakeAppArmor(true),
			wantProfile: DefaultAppArmorProfile, wantLoads: 1},
		{name: "already loaded", host: newFakeAppArmor(true, DefaultAppArmorProfile),
			wantProfile: DefaultAppArmorProfile},
		{name: "kernel without AppArmor: skipped with a warning", host: newFakeAppArmor(false),
			wantWarn: "AppArmor is not enabled in this kernel"},
		{name: "load fails", host: &fakeAppArmor{enabled: true, loaded: map[string]bool{}, loadErr: errors.New("apparmor_parser: exit 1")},
			errHas: "appArmorProfile RuntimeDefault: apparmor_parser: exit 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warns []string
			s := &specs.Spec{}
			err := WithAppArmorRuntimeDefault(tt.host, func(m string) { warns = append(warns, m) })(s)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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
			if tt.host.loads != tt.wantLoads {
				t.Errorf("loads = %d, want %d", tt.host.loads, tt.wantLoads)
			}
		})
	}
}

func TestWithAppArmorRuntimeDefaultConcurrent(t *testing.T) {
	h := newFakeAppArmor(true)
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
	if h.loads != 1 {
		t.Fatalf("the default profile was loaded %d times", h.loads)
	}
}

func TestWithAppArmorLocalhost(t *testing.T) {
	tests := []struct {
		name, profile string
		host          *fakeAppArmor
		errHas        string
	}{
		{name: "loaded profile applies", profile: "k8s-deny-write", host: newFakeAppArmor(true, "k8s-deny-write")},
		{name: "not loaded", profile: "k8s-deny-write", host: newFakeAppArmor(true), errHas: "no profile of that name is loaded on this node"},
		{name: "kernel without AppArmor", profile: "k8s-deny-write", host: newFakeAppArmor(false, "k8s-deny-write"), errHas: "AppArmor is not enabled in this kernel"},
		{name: "empty name", profile: "", host: newFakeAppArmor(true), errHas: "is not a valid profile name"},
		{name: "newline in name", profile: "a\nb", host: newFakeAppArmor(true), errHas: "is not a valid profile name"},
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
