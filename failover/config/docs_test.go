package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// docRow is the start of a key's row in docs/configuration.md; the meaning
// column after it is written by hand.
func docRow(k Key) string {
	env := "—"
	if k.Env != "" {
		env = "`" + k.Env + "`"
	}
	def := "—"
	if k.Default != "" {
		def = "`" + k.Default + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s |", k.Path, env, def)
}

// TestDocsListEveryKey keeps docs/configuration.md in step with Config: each
// key has a row with its environment variable and default, and no row names
// a key that no longer exists. On failure it prints the rows to paste.
func TestDocsListEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	known := map[string]bool{}
	var missing []string
	for _, k := range Keys() {
		known[k.Path] = true
		if !strings.Contains(doc, docRow(k)+" ") {
			missing = append(missing, docRow(k)+" … |")
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md lacks (or has a stale env/default for) %d keys; rows:\n%s",
			len(missing), strings.Join(missing, "\n"))
	}
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		path, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
		if !known[path] {
			t.Errorf("docs/configuration.md documents %q, which is not a key", path)
		}
	}
}
