package provider_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/mandate-dev/mandate/provider"
)

// TestReadme keeps the README's code honest: every statement of its Go snippets appears in
// the module's compiled code (its examples and tests, which run), and its setup document is the
// one Example applies.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Every Go file of the module, white space removed, to look statements up in.
	var sources strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources.WriteString(squeeze(string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := sources.String()
	var lang string
	var block []string
	blocks := map[string][][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(readme)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```") && lang == "":
			lang = strings.TrimPrefix(line, "```")
			if lang == "" {
				lang = "text"
			}
			block = nil
		case strings.HasPrefix(line, "```"):
			blocks[lang] = append(blocks[lang], block)
			lang = ""
		case lang == "go":
			code, _, _ := strings.Cut(line, "//")
			if strings.Contains(line, "…") || strings.TrimSpace(code) == "" {
				continue
			}
			if !strings.Contains(all, squeeze(code)) {
				t.Errorf("README.md:%d: %q is in no Go file of the module", n, strings.TrimSpace(line))
			}
			block = append(block, line)
		case lang != "":
			block = append(block, line)
		}
	}
	if len(blocks["go"]) < 5 {
		t.Fatalf("found %d Go snippets in the README", len(blocks["go"]))
	}
	setups := 0
	for _, b := range blocks["json"] {
		doc := strings.Join(b, "\n")
		if !strings.Contains(doc, `"resource_servers"`) {
			continue
		}
		setups++
		if squeeze(doc) != squeeze(readmeSetup) {
			t.Errorf("the README's setup differs from readmeSetup, which Example applies:\n%s", doc)
		}
		if _, err := provider.ParseSetup([]byte(doc)); err != nil {
			t.Errorf("the README's setup does not parse: %v", err)
		}
	}
	if setups != 1 {
		t.Errorf("%d setup documents in the README, want 1", setups)
	}
}

// squeeze removes white space.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
