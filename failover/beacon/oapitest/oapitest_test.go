package oapitest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirAndRefs(t *testing.T) {
	t.Setenv("FAILOVERD_SPECS", filepath.Join(t.TempDir(), "absent"))
	if _, ok := Dir("beacon-apis"); ok {
		t.Fatal("absent specs found")
	}
	root := t.TempDir()
	t.Setenv("FAILOVERD_SPECS", root)
	d := filepath.Join(root, "x")
	os.MkdirAll(filepath.Join(d, "types"), 0o755)
	os.WriteFile(filepath.Join(d, "types", "t.yaml"), []byte(`
U:
  type: string
  pattern: "^[0-9]+$"
Obj:
  type: object
  required: [a]
  properties:
    a: {$ref: "#/U"}
    b: {type: array, items: {$ref: "./t.yaml#/U"}, minItems: 1}
Loop: {$ref: "#/Loop"}
`), 0o644)
	os.WriteFile(filepath.Join(d, "api.yaml"), []byte(`
post:
  requestBody: {content: {application/json: {schema: {$ref: "./types/t.yaml#/Obj"}}}}
  responses:
    "500": {$ref: "./missing.yaml#/R"}
`), 0o644)
	dir, ok := Dir("x")
	if !ok {
		t.Fatal("Dir")
	}
	s := Load(dir)
	rs, err := s.RequestSchema("api.yaml", "post")
	if err != nil {
		t.Fatal(err)
	}
	for body, ok := range map[string]bool{`{"a":"1"}`: true, `{"a":"x"}`: false, `{}`: false, `{"a":"1","b":[]}`: false, `{"a":"1","b":["2"]}`: true, `[]`: false} {
		if err := rs.ValidateJSON([]byte(body)); (err == nil) != ok {
			t.Errorf("%s: %v", body, err)
		}
	}
	if _, err := s.ResponseSchema("api.yaml", "post", 500); err == nil {
		t.Error("missing file resolved without a fallback")
	}
	s.Fallback = func(f, p string) (any, string, bool) {
		return map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}, "test", true
	}
	if _, err := s.ResponseSchema("api.yaml", "post", 500); err != nil {
		t.Error(err)
	}
	loop, _ := s.At("types/t.yaml", "/Loop")
	if err := loop.Validate("x"); err == nil {
		t.Error("ref loop not reported")
	}
}
