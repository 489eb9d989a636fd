// Package oapitest checks JSON documents against the schema parts of the
// official OpenAPI files kept in shared/specs (beacon-APIs, keymanager-APIs).
//
// It is a deliberately small validator: it follows $ref (relative files and
// JSON pointers) and checks type, required, properties, items, enum, pattern,
// minItems, maxItems, uniqueItems, allOf and oneOf — the parts the failoverd
// clients depend on. Everything else in a schema (format, example,
// description, …) is ignored.
//
// The spec files are optional: on a user's clone ../shared/specs does not
// exist, and Dir then reports false so tests can skip.
package oapitest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// Dir finds shared/specs/<name> (for example "beacon-apis"): first
// $FAILOVERD_SPECS/<name>, then ../shared/specs/<name> next to the module root
// found by walking up from the working directory to go.mod.
func Dir(name string) (string, bool) {
	if env := os.Getenv("FAILOVERD_SPECS"); env != "" {
		d := filepath.Join(env, name)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, true
		}
		return "", false
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			s := filepath.Join(d, "..", "shared", "specs", name)
			if st, err := os.Stat(s); err == nil && st.IsDir() {
				return filepath.Clean(s), true
			}
			return "", false
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// Spec loads YAML files below a root directory and resolves references.
type Spec struct {
	root string

	// Fallback resolves a reference whose file is not in the spec directory
	// (the beacon-APIs copy in shared/specs leaves out beacon-node-oapi.yaml,
	// types/http.yaml and types/phase0/). It gets the file path relative to
	// root and the JSON pointer and returns the node and where it came from;
	// ok=false means unresolvable.
	Fallback func(relFile, pointer string) (v any, source string, ok bool)

	mu        sync.Mutex
	files     map[string]any
	fallbacks map[string]string
}

// Load returns a Spec rooted at dir.
func Load(dir string) *Spec {
	return &Spec{root: dir, files: map[string]any{}, fallbacks: map[string]string{}}
}

// FallbacksUsed lists the references that were answered by Fallback, so a
// test can log what did not come from the spec files.
func (s *Spec) FallbacksUsed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.fallbacks))
	for k, src := range s.fallbacks {
		out = append(out, k+" <- "+src)
	}
	sort.Strings(out)
	return out
}

func (s *Spec) file(rel string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.files[rel]; ok {
		return v, nil
	}
	b, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	s.files[rel] = v
	return v, nil
}

// node is a schema node with the file it came from (for relative refs).
type node struct {
	file string
	v    any
}

func pointer(v any, ptr string) (any, error) {
	if ptr == "" || ptr == "/" {
		return v, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch m := v.(type) {
		case map[string]any:
			next, ok := m[tok]
			if !ok {
				return nil, fmt.Errorf("pointer %q: no %q", ptr, tok)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(m) {
				return nil, fmt.Errorf("pointer %q: bad index %q", ptr, tok)
			}
			v = m[i]
		default:
			return nil, fmt.Errorf("pointer %q: cannot descend into %T", ptr, v)
		}
	}
	return v, nil
}

// resolve follows a $ref written in file from.
func (s *Spec) resolve(from, ref string) (node, error) {
	f, ptr, _ := strings.Cut(ref, "#")
	rel := from
	if f != "" {
		rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(from), f)))
	}
	doc, err := s.file(rel)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && s.Fallback != nil {
			if v, src, ok := s.Fallback(rel, ptr); ok {
				s.mu.Lock()
				s.fallbacks[rel+"#"+ptr] = src
				s.mu.Unlock()
				// Fallback nodes carry refs relative to the spec root.
				return node{file: "_fallback.yaml", v: v}, nil
			}
		}
		return node{}, fmt.Errorf("$ref %q from %s: %w", ref, from, err)
	}
	v, err := pointer(doc, ptr)
	if err != nil {
		return node{}, fmt.Errorf("$ref %q from %s: %w", ref, from, err)
	}
	return node{file: rel, v: v}, nil
}

// deref follows $ref chains until a node without $ref.
func (s *Spec) deref(n node) (node, error) {
	for i := 0; i < 32; i++ {
		m, ok := n.v.(map[string]any)
		if !ok {
			return n, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return n, nil
		}
		next, err := s.resolve(n.file, ref)
		if err != nil {
			return node{}, err
		}
		n = next
	}
	return node{}, errors.New("$ref loop")
}

// Schema is a located schema node.
type Schema struct {
	s *Spec
	n node
}

// Value is the raw node (after YAML → JSON decoding).
func (sc Schema) Value() any { return sc.n.v }

// At returns the node at file#pointer (file relative to the spec root).
func (s *Spec) At(file, ptr string) (Schema, error) {
	n, err := s.resolve(file, "#"+ptr)
	if err != nil {
		return Schema{}, err
	}
	n.file = file
	return Schema{s: s, n: n}, nil
}

// RequestSchema is the application/json request body schema of an
// operation in a path file (method lower case: "post", "delete").
func (s *Spec) RequestSchema(file, method string) (Schema, error) {
	return s.At(file, "/"+method+"/requestBody/content/application~1json/schema")
}

// ResponseSchema is the application/json schema of the response with the
// given status code of an operation in a path file, following a $ref to a
// shared response object.
func (s *Spec) ResponseSchema(file, method string, code int) (Schema, error) {
	resp, err := s.At(file, "/"+method+"/responses/"+strconv.Itoa(code))
	if err != nil {
		return Schema{}, err
	}
	n, err := s.deref(resp.n)
	if err != nil {
		return Schema{}, err
	}
	v, err := pointer(n.v, "/content/application~1json/schema")
	if err != nil {
		return Schema{}, fmt.Errorf("%s %s %d: %w", file, method, code, err)
	}
	return Schema{s: s, n: node{file: n.file, v: v}}, nil
}

// ValidateJSON decodes raw and validates it.
func (sc Schema) ValidateJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sc.Validate(v)
}

// Validate checks a decoded JSON value (as from encoding/json into any).
func (sc Schema) Validate(v any) error {
	var errs []error
	sc.s.validate(sc.n, v, "$", &errs)
	return errors.Join(errs...)
}

var reCache sync.Map

func compile(p string) (*regexp.Regexp, error) {
	if r, ok := reCache.Load(p); ok {
		return r.(*regexp.Regexp), nil
	}
	r, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	reCache.Store(p, r)
	return r, nil
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (s *Spec) validate(n node, v any, at string, errs *[]error) {
	n, err := s.deref(n)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", at, err))
		return
	}
	m, ok := n.v.(map[string]any)
	if !ok {
		return
	}
	if all, ok := m["allOf"].([]any); ok {
		for _, sub := range all {
			s.validate(node{file: n.file, v: sub}, v, at, errs)
		}
	}
	if one, ok := m["oneOf"].([]any); ok {
		matched := 0
		for _, sub := range one {
			var e []error
			s.validate(node{file: n.file, v: sub}, v, at, &e)
			if len(e) == 0 {
				matched++
			}
		}
		if matched != 1 {
			*errs = append(*errs, fmt.Errorf("%s: matches %d of oneOf, want exactly 1", at, matched))
		}
	}
	if t, ok := m["type"].(string); ok {
		got := typeOf(v)
		okType := got == t || (t == "number" && got == "integer")
		if !okType {
			*errs = append(*errs, fmt.Errorf("%s: type %s, want %s", at, got, t))
			return
		}
	}
	if enum, ok := m["enum"].([]any); ok {
		if !slices.Contains(enum, v) {
			*errs = append(*errs, fmt.Errorf("%s: %v not in enum %v", at, v, enum))
		}
	}
	if p, ok := m["pattern"].(string); ok {
		if str, isStr := v.(string); isStr {
			re, err := compile(p)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: bad pattern %q in spec: %w", at, p, err))
			} else if !re.MatchString(str) {
				*errs = append(*errs, fmt.Errorf("%s: %q does not match %s", at, str, p))
			}
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if req, ok := m["required"].([]any); ok {
			for _, r := range req {
				name, _ := r.(string)
				if _, present := x[name]; !present {
					*errs = append(*errs, fmt.Errorf("%s: required property %q missing", at, name))
				}
			}
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for name, sub := range props {
				if pv, present := x[name]; present {
					s.validate(node{file: n.file, v: sub}, pv, at+"."+name, errs)
				}
			}
		}
	case []any:
		if mi, ok := m["minItems"].(float64); ok && float64(len(x)) < mi {
			*errs = append(*errs, fmt.Errorf("%s: %d items, want at least %v", at, len(x), mi))
		}
		if ma, ok := m["maxItems"].(float64); ok && float64(len(x)) > ma {
			*errs = append(*errs, fmt.Errorf("%s: %d items, want at most %v", at, len(x), ma))
		}
		if u, ok := m["uniqueItems"].(bool); ok && u {
			seen := map[string]bool{}
			for i, it := range x {
				k, _ := json.Marshal(it)
				if seen[string(k)] {
					*errs = append(*errs, fmt.Errorf("%s[%d]: duplicate item", at, i))
				}
				seen[string(k)] = true
			}
		}
		if items, ok := m["items"]; ok {
			for i, it := range x {
				s.validate(node{file: n.file, v: items}, it, fmt.Sprintf("%s[%d]", at, i), errs)
			}
		}
	}
}

// BeaconFallback answers the references the beacon-APIs copy in
// shared/specs cannot: beacon-node-oapi.yaml#/components/schemas/NAME is
// looked up as a top-level NAME in types/primitive.yaml, types/api.yaml and
// types/node.yaml (that is how the upstream file maps them); the few schemas
// whose upstream files are absent (ErrorMessage, the shared error responses,
// Phase0 Validator) are transcribed here from ethereum/beacon-APIs.
func BeaconFallback(s *Spec) func(relFile, pointer string) (any, string, bool) {
	const transcribed = "transcribed in oapitest from ethereum/beacon-APIs"
	return func(relFile, ptr string) (any, string, bool) {
		base := filepath.Base(relFile)
		switch {
		case base == "beacon-node-oapi.yaml" && strings.HasPrefix(ptr, "/components/schemas/"):
			name := strings.TrimPrefix(ptr, "/components/schemas/")
			for _, f := range []string{"types/primitive.yaml", "types/api.yaml", "types/node.yaml"} {
				doc, err := s.file(f)
				if err != nil {
					continue
				}
				if m, ok := doc.(map[string]any); ok {
					if v, ok := m[name]; ok {
						return rebase(v, f), f + "#/" + name, true
					}
				}
			}
			if name == "ErrorMessage" {
				return errorMessage(), transcribed, true
			}
		case base == "beacon-node-oapi.yaml" && strings.HasPrefix(ptr, "/components/responses/"):
			return map[string]any{
				"description": strings.TrimPrefix(ptr, "/components/responses/"),
				"content": map[string]any{"application/json": map[string]any{
					"schema": errorMessage(),
				}},
			}, transcribed, true
		case base == "validator.yaml" && ptr == "/Phase0/Validator":
			return rebase(phase0Validator(), "types/phase0/validator.yaml"), transcribed, true
		}
		return nil, "", false
	}
}

// rebase rewrites relative $refs in a borrowed node to be relative to the
// spec root ("types/x.yaml" → the node is resolved as if it lived in the
// file named by from).
func rebase(v any, from string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if k == "$ref" {
				if ref, ok := val.(string); ok {
					f, ptr, _ := strings.Cut(ref, "#")
					if f == "" {
						f = from
					} else {
						f = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(from), f)))
					}
					// Make it relative to the beacon-node-oapi.yaml location
					// (the spec root) so resolution from there works.
					out[k] = f + "#" + ptr
					continue
				}
			}
			out[k] = rebase(val, from)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = rebase(x[i], from)
		}
		return out
	}
	return v
}

// errorMessage is upstream's ErrorMessage: no property is required there.
func errorMessage() any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"code":        map[string]any{"type": "number"},
			"message":     map[string]any{"type": "string"},
			"stacktraces": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
	}
}

func phase0Validator() any {
	u64 := map[string]any{"$ref": "../primitive.yaml#/Uint64"}
	return map[string]any{
		"type": "object",
		"required": []any{"pubkey", "withdrawal_credentials", "effective_balance", "slashed",
			"activation_eligibility_epoch", "activation_epoch", "exit_epoch", "withdrawable_epoch"},
		"properties": map[string]any{
			"pubkey":                       map[string]any{"$ref": "../primitive.yaml#/Pubkey"},
			"withdrawal_credentials":       map[string]any{"$ref": "../primitive.yaml#/Root"},
			"effective_balance":            map[string]any{"$ref": "../primitive.yaml#/Gwei"},
			"slashed":                      map[string]any{"type": "boolean"},
			"activation_eligibility_epoch": u64,
			"activation_epoch":             u64,
			"exit_epoch":                   u64,
			"withdrawable_epoch":           u64,
		},
	}
}
