package main

import "testing"

func TestBundleOf(t *testing.T) {
	for _, c := range []struct {
		args        []string
		sub, bundle string
	}{
		{[]string{"--root", "/r", "--log", "/b/log.json", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "id"}, "create", "/b"},
		{[]string{"--root=/r", "create", "-b", "/x", "id"}, "create", "/x"},
		{[]string{"--systemd-cgroup", "run", "--bundle=/y", "id"}, "run", "/y"},
		{[]string{"create", "id"}, "create", "."},
		{[]string{"--root", "/r", "delete", "id"}, "delete", ""},
		{[]string{"features"}, "features", ""},
		{[]string{"--debug"}, "", ""},
	} {
		sub, bundle := bundleOf(c.args)
		if sub != c.sub || bundle != c.bundle {
			t.Errorf("bundleOf(%q) = %q, %q; want %q, %q", c.args, sub, bundle, c.sub, c.bundle)
		}
	}
}
