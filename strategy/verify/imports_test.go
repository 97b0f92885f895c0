package verify

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImportGraph proves that a resource server importing this package, or its DPoP checker,
// pulls in nothing but the standard library and go-jose v4: no fosite, no gorm, nothing else
// from this module but the stdlib-only strict rules beside it (and the DPoP checker, which the
// verifier uses).
func TestImportGraph(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := exec.LookPath(goTool); err != nil {
			t.Skip("go tool not found")
		}
	}
	for _, dir := range []string{".", "./dpop"} {
		importGraph(t, goTool, dir)
	}
}

func importGraph(t *testing.T, goTool, dir string) {
	const root = "github.com/mandate-dev/mandate/strategy/verify"
	self := root
	if dir != "." {
		self = root + "/" + strings.TrimPrefix(dir, "./")
	}
	for _, args := range [][]string{
		{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", dir},
		{"list", "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", dir},
	} {
		out, err := exec.Command(goTool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var sawJose, sawSelf bool
		for _, p := range strings.Fields(string(out)) {
			switch {
			case p == "github.com/go-jose/go-jose/v4" || strings.HasPrefix(p, "github.com/go-jose/go-jose/v4/"):
				sawJose = true
			case p == self || p == self+"_test" || p == self+".test" || p == "["+self+".test]":
				sawSelf = true
			case p == root+"/strict", self == root && p == root+"/dpop":
				// The shared rules for outside input; it imports only the standard library,
				// which this listing proves too (anything it imported would be listed).
			default:
				t.Errorf("go %s: forbidden dependency %s", strings.Join(args, " "), p)
			}
		}
		if !sawJose || !sawSelf {
			t.Fatalf("go %s listed neither go-jose nor the package itself:\n%s", strings.Join(args, " "), out)
		}
	}
}
