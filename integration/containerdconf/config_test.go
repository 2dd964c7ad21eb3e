package containerdconf

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestRender(t *testing.T) {
	for _, v := range []int{2, 3} {
		c := Config{Version: v, Root: "/t/root", State: "/t/state", Opt: "/t/opt", Socket: "/t/c.sock", SandboxImage: "pause:1",
			CNIBinDir: "/t/cni/bin", CNIConfDir: "/t/cni/net.d", Handler: "runc", HandlerBinaryName: "/t/bin/runc", DefaultHandler: true}
		text, err := c.Render()
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := toml.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatalf("version %d is not TOML: %v\n%s", v, err, text)
		}
		cri := "io.containerd.grpc.v1.cri"
		if v == 3 {
			cri = "io.containerd.cri.v1.runtime"
		}
		plugins := doc["plugins"].(map[string]any)
		rt := plugins[cri].(map[string]any)
		ctrd := rt["containerd"].(map[string]any)
		h := ctrd["runtimes"].(map[string]any)["runc"].(map[string]any)
		if ctrd["default_runtime_name"] != "runc" || h["options"].(map[string]any)["BinaryName"] != "/t/bin/runc" || rt["restrict_oom_score_adj"] != true {
			t.Errorf("version %d: handler or CRI options missing:\n%s", v, text)
		}
		if doc["ttrpc"].(map[string]any)["address"] != "/t/c.sock.ttrpc" || int(doc["version"].(int64)) != v {
			t.Errorf("version %d: header wrong:\n%s", v, text)
		}
		if g := plugins["io.containerd.grpc.v1.cri"].(map[string]any); g["stream_server_port"] != "0" {
			t.Errorf("version %d: streaming server not on a random port:\n%s", v, text)
		}
	}
	c := Config{Version: 2, Handler: "h", HandlerBinaryName: "b"}
	if strings.Contains(c.MustRender(), "default_runtime_name") {
		t.Error("a handler that is not the default is named default")
	}
	if _, err := (Config{Version: 1}).Render(); err == nil {
		t.Error("version 1 rendered")
	}
}
