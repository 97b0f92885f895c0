package provider_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoStorageLinked: the provider takes its store from the application, so a program with its
// own storage.Store links neither gorm nor any database driver (a test of the import graph; the
// README's embedding program on gormstore's SQLite links them through gormstore).
func TestNoStorageLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".", "./admin").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"gorm.io/", "github.com/jackc/", "github.com/go-sql-driver/", "github.com/ncruces/", "/storage/gormstore"} {
			if strings.Contains(p, banned) {
				t.Errorf("the provider links %s", p)
			}
		}
	}
}
