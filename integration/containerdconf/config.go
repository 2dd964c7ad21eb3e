// Package containerdconf renders the containerd configuration the
// integration tests start their own containerd with: every path under the
// test's directory, its own sockets, the CNI plugin of the test, and one
// runc-shim handler. Both config versions are written from one template,
// since the CRI plugin's options are the same and only their tables moved
// in containerd 2.x (io.containerd.grpc.v1.cri split into
// io.containerd.cri.v1.images and io.containerd.cri.v1.runtime; see
// containerd's docs/cri/config.md).
package containerdconf

import (
	"bytes"
	"fmt"
	"text/template"
)

// Config is what differs between the tests' containerds.
type Config struct {
	// Version is the config schema: 2 (containerd 1.x) or 3 (2.x).
	Version                    int
	Root, State, Opt           string
	Socket                     string // gRPC; ttrpc is Socket + ".ttrpc"
	SandboxImage               string
	CNIBinDir, CNIConfDir      string
	Handler, HandlerBinaryName string
	// DefaultHandler makes Handler the CRI default runtime.
	DefaultHandler bool
}

// Render returns the TOML text.
func (c Config) Render() (string, error) {
	if c.Version != 2 && c.Version != 3 {
		return "", fmt.Errorf("containerd config version %d: only 2 and 3 exist", c.Version)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		return "", fmt.Errorf("rendering containerd config: %w", err)
	}
	return b.String(), nil
}

// MustRender is Render for callers whose Config is a literal.
func (c Config) MustRender() string {
	s, err := c.Render()
	if err != nil {
		panic(err)
	}
	return s
}

var tmpl = template.Must(template.New("containerd.toml").Funcs(template.FuncMap{"q": func(s string) string { return fmt.Sprintf("%q", s) }}).Parse(
	`version = {{.Version}}
root = {{q .Root}}
state = {{q .State}}
{{- if eq .Version 3}}
# Snapshotters this machine lacks would only log errors; NRI would listen
# on the host's /var/run/nri/nri.sock.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.nri.v1.nri"]
{{- else}}
# Snapshotters this machine lacks would only log errors.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
{{- end}}

[grpc]
  address = {{q .Socket}}
[ttrpc]
  address = {{q (printf "%s.ttrpc" .Socket)}}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {{q .Opt}}
{{- $rt := "io.containerd.grpc.v1.cri"}}{{if eq .Version 3}}{{$rt = "io.containerd.cri.v1.runtime"}}
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = {{q .SandboxImage}}
  [plugins."io.containerd.cri.v1.runtime"]
{{- else}}
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {{q .SandboxImage}}
    # A random port: another containerd may hold the usual one.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
{{- end}}
    # This machine's root lacks CAP_SYS_RESOURCE: without this the
    # sandbox's oom_score_adj makes runc fail.
    restrict_oom_score_adj = true
    # Network namespaces under state, not the host's /var/run/netns.
    netns_mounts_under_state_dir = true
    [plugins."{{$rt}}".cni]
{{- if eq .Version 3}}
      bin_dirs = [{{q .CNIBinDir}}]
{{- else}}
      bin_dir = {{q .CNIBinDir}}
{{- end}}
      conf_dir = {{q .CNIConfDir}}
    [plugins."{{$rt}}".containerd]
{{- if ne .Version 3}}
      snapshotter = "overlayfs"
{{- end}}
{{- if .DefaultHandler}}
      default_runtime_name = {{q .Handler}}
{{- end}}
      [plugins."{{$rt}}".containerd.runtimes.{{.Handler}}]
        runtime_type = "io.containerd.runc.v2"
        [plugins."{{$rt}}".containerd.runtimes.{{.Handler}}.options]
          BinaryName = {{q .HandlerBinaryName}}
{{- if eq .Version 3}}
  [plugins."io.containerd.grpc.v1.cri"]
    # A random port: another containerd may hold the usual one.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
{{- end}}
`))
