package parley_test

// Rules that matter, as tests (STYLE.md, "Practices we adopt" 12): every
// package has a doc comment, and packages import only what their role allows.

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/parleychat/parley"

type pkgInfo struct {
	path string   // import path
	dir  string   // directory
	deps []string // transitive imports (go list .Deps)
	imps []string // direct imports (go list .Imports)
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .Deps \" \"}}\t{{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("go list: odd line %q", line)
		}
		pkgs = append(pkgs, pkgInfo{path: f[0], dir: f[1], deps: strings.Fields(f[2]), imps: strings.Fields(f[3])})
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestPackagesHaveDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		files, _ := filepath.Glob(filepath.Join(p.dir, "*.go"))
		documented := false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				documented = true
				break
			}
		}
		if !documented {
			t.Errorf("package %s has no doc comment (add a doc.go)", p.path)
		}
	}
}

// forbidden maps a package (and its subpackages, unless exact) to imports it
// must never reach: deny transitively, denyDirect as a direct import only
// (the standard library itself reaches os everywhere).
var forbidden = []struct {
	pkg        string
	exact      bool
	deny       []string
	denyDirect []string
	why        string
}{
	{"", true, []string{"net", "database/sql"}, []string{"os", "os/exec"}, "the vocabulary imports only the standard library and does no I/O"},
	{"/signal", true, []string{"net", "database/sql", module + "/server", module + "/client", module + "/wire"}, []string{"os"}, "crypto does no I/O and knows neither client nor server"},
	{"/wire", false, []string{"database/sql", module + "/server", module + "/client"}, nil, "the protocol is shared by both ends"},
	{"/server", false, []string{module + "/client"}, nil, "client and server never import each other"},
	{"/client", false, []string{module + "/server"}, nil, "client and server never import each other"},
	{"/client", true, []string{"database/sql", "modernc.org/sqlite"}, []string{"os"}, "package client compiles to WebAssembly: platform specifics stay behind its Store interface"},
	{"/client", true, []string{module + "/call", "github.com/pion/webrtc/v4"}, nil, "package client compiles to WebAssembly: call media (pion) stays in package call, which imports client, never the reverse"},
}

func TestImportBoundaries(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.HasSuffix(p.path, "test") { // test helper packages may reach further
			continue
		}
		for _, rule := range forbidden {
			base := module + rule.pkg
			if p.path != base && (rule.exact || !strings.HasPrefix(p.path, base+"/")) {
				continue
			}
			for _, d := range p.deps {
				for _, deny := range rule.deny {
					if d == deny || strings.HasPrefix(d, deny+"/") && strings.HasPrefix(deny, module) {
						t.Errorf("%s reaches %s: %s", p.path, d, rule.why)
					}
				}
			}
			for _, d := range p.imps {
				for _, deny := range rule.denyDirect {
					if d == deny {
						t.Errorf("%s imports %s: %s", p.path, d, rule.why)
					}
				}
			}
		}
	}
}
