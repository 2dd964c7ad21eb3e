package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/secrun/secrun/spec"
)

// ReadResult reads a report.json (or validity.json) the suite wrote.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if r.Mode != "conformance" && r.Mode != "validity" {
		return nil, fmt.Errorf("report %s: mode %q is neither conformance nor validity; is it a report of secrunctl conformance?", path, r.Mode)
	}
	return &r, nil
}

// Verify is what CI gates a report on, where the report comes from a run
// it did not watch (a VM): no check failed, the counts agree with the
// checks listed, and every setting in require had checks that ran and
// none that skipped, so that a VM whose kernel lost AppArmor cannot pass
// with its AppArmor checks quietly skipped.
func (r *Result) Verify(require []Setting) error {
	all := r.All()
	var failed []string
	counts := map[Status]int{}
	perSetting := map[Setting]map[Status]int{}
	skipReason := map[Setting]string{}
	for _, c := range all {
		counts[c.Status]++
		if perSetting[c.Setting] == nil {
			perSetting[c.Setting] = map[Status]int{}
		}
		perSetting[c.Setting][c.Status]++
		switch c.Status {
		case StatusFail:
			failed = append(failed, c.ID)
		case StatusSkip:
			if skipReason[c.Setting] == "" {
				skipReason[c.Setting] = c.ID + ": " + c.Message
			}
		}
	}
	var errs []error
	if counts[StatusPass] != r.Passed || counts[StatusFail] != r.Failed || counts[StatusSkip] != r.Skipped {
		errs = append(errs, fmt.Errorf("the counts (%d passed, %d failed, %d skipped) disagree with the %d checks listed (%d, %d, %d): the report is damaged",
			r.Passed, r.Failed, r.Skipped, len(all), counts[StatusPass], counts[StatusFail], counts[StatusSkip]))
	}
	if len(all) == 0 {
		errs = append(errs, errors.New("the report lists no checks"))
	}
	if len(failed) > 0 {
		shown := failed
		if len(shown) > 10 {
			shown = shown[:10]
		}
		more := ""
		if n := len(failed) - len(shown); n > 0 {
			more = fmt.Sprintf(" and %d more", n)
		}
		errs = append(errs, fmt.Errorf("%d checks failed: %s%s", len(failed), strings.Join(shown, ", "), more))
	}
	for _, s := range require {
		n := perSetting[s]
		switch {
		case n[StatusSkip] > 0:
			errs = append(errs, fmt.Errorf("%s is required but %d of its checks skipped (%s)", s, n[StatusSkip], skipReason[s]))
		case n[StatusPass]+n[StatusFail] == 0:
			errs = append(errs, fmt.Errorf("%s is required but the report has no %s check", s, s))
		}
		if s == SettingAppArmor && !r.Host.AppArmor {
			errs = append(errs, errors.New("apparmor is required but the report says the node had no AppArmor"))
		}
	}
	return errors.Join(errs...)
}

// ParseSettings reads a comma-separated list of setting names.
func ParseSettings(list string) ([]Setting, error) {
	var out []Setting
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		s := Setting(f)
		if !slices.Contains(Settings, s) {
			names := make([]string, len(Settings))
			for i, v := range Settings {
				names[i] = string(v)
			}
			msg := fmt.Sprintf("unknown setting %q", f)
			if sug := spec.Suggest(f, names); sug != "" {
				msg += fmt.Sprintf("; did you mean %s?", sug)
			}
			return nil, fmt.Errorf("%s (settings: %s)", msg, strings.Join(names, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}
