package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic, and whatever Parse accepts is valid.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.good.yaml", "*.bad.yaml"} {
		for _, name := range files(f, pattern) {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, name := range examples {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		if _, err := cfg.Matchers(); err != nil {
			t.Fatalf("Parse accepted matchers that Matchers rejects: %v", err)
		}
	})
}
