package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"sigs.k8s.io/yaml"
)

// LoadOptions says where Load reads from.
type LoadOptions struct {
	// File is the YAML config file; empty means defaults, environment and flags only.
	File string
	// Getenv reads environment variables (os.Getenv in main; a map in tests).
	// Nil reads none. An empty value counts as unset.
	Getenv func(string) string
	// Flags are the command line; a flag whose name is a key's FlagName and
	// that was set explicitly overrides everything else. Nil binds none.
	Flags *pflag.FlagSet
}

// Load builds the configuration from, in rising precedence, Default(), the
// file, FAILOVERD_* environment variables and explicitly set flags, and
// validates it. Every problem found is reported at once, each naming its key.
func Load(opts LoadOptions) (*Config, error) {
	var data []byte
	if opts.File != "" {
		var err error
		if data, err = os.ReadFile(opts.File); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
	}
	cfg, err := load(data, opts.Getenv, opts.Flags)
	if err != nil {
		if opts.File != "" {
			return nil, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Parse reads a YAML document over Default() and validates the result; no
// environment, no flags.
func Parse(data []byte) (*Config, error) {
	cfg, err := load(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func load(data []byte, getenv func(string) string, flags *pflag.FlagSet) (*Config, error) {
	keys := Keys()
	def := reflect.ValueOf(Default())
	// A fresh instance every time: the global viper would leak settings
	// between tests and between the subcommands of one process.
	v := viper.New()
	for _, k := range keys {
		if k.Settable() {
			v.SetDefault(k.Path, valueAt(def, k.Path).Interface())
		}
	}

	var file Config
	fileOnly := fileOnlyKeys(keys)
	inFile := map[string]bool{}
	if len(data) > 0 {
		raw, err := parseYAML(data)
		if err != nil {
			return nil, err
		}
		if err := checkKeys(raw); err != nil {
			return nil, err
		}
		// Decode the file on its own and strictly first: type errors then
		// name the file's own value, and the file-only keys (the fleet and
		// the maps: notify.labels, snapshot labels and tags, subnets, AMIs)
		// keep the case they were written in. viper lowercases every key it
		// stores, and label names, tag keys and zone names are case-sensitive.
		if err := decode(raw, &file, false); err != nil {
			return nil, err
		}
		for _, path := range fileOnly {
			if takePath(raw, path) {
				inFile[path] = true
			}
		}
		if err := v.MergeConfigMap(raw); err != nil {
			return nil, fmt.Errorf("merge file: %w", err)
		}
	}

	// viper reads the environment only through os.Getenv, which tests cannot
	// inject; so the variables are read here, typed, and merged over the
	// file. Bound flags still sit above them.
	if getenv != nil {
		env, err := envSettings(keys, getenv)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(env); err != nil {
			return nil, fmt.Errorf("merge environment: %w", err)
		}
	}

	if flags != nil {
		for _, k := range keys {
			if !k.Settable() {
				continue
			}
			// viper consults a bound flag only when it was set (Changed),
			// so a flag's own default never hides the file or environment.
			if f := flags.Lookup(k.Flag); f != nil {
				if err := v.BindPFlag(k.Path, f); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", k.Flag, err)
				}
			}
		}
	}

	var cfg Config
	if err := decode(v.AllSettings(), &cfg, true); err != nil {
		return nil, err
	}
	// The file-only keys bypassed viper: take them from the file as
	// written, or from Default() when the file does not set them.
	got, fromFile := reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(file)
	for _, path := range fileOnly {
		src := def
		if inFile[path] {
			src = fromFile
		}
		valueAt(got, path).Set(valueAt(src, path))
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyDefaults fills what a default of another key stands for.
func (c *Config) applyDefaults() {
	for i := range c.Fleet {
		if c.Fleet[i].Site == "" {
			c.Fleet[i].Site = c.Heartbeat.DefaultSite
		}
	}
}

// fileOnlyKeys are the key paths that only the file sets and that never
// pass through viper: the fleet and every map (not the keys inside the fleet,
// which come with it).
func fileOnlyKeys(keys []Key) []string {
	var paths []string
	for _, k := range keys {
		if !k.Settable() && !strings.Contains(k.Path, "[]") {
			paths = append(paths, k.Path)
		}
	}
	return paths
}

// takePath removes the value at a key path from the file's raw settings and
// reports whether there was one.
func takePath(raw map[string]any, path string) bool {
	segs := strings.Split(path, ".")
	m := raw
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			return false
		}
		m = next
	}
	last := segs[len(segs)-1]
	_, ok := m[last]
	delete(m, last)
	return ok
}

// valueAt is the field of a Config value at a key path.
func valueAt(v reflect.Value, path string) reflect.Value {
	for _, seg := range strings.Split(path, ".") {
		t := v.Type()
		for i := range t.NumField() {
			if tagName(t.Field(i)) == seg {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

// parseYAML reads a YAML document into plain maps and lists. Duplicate keys
// are errors: with two "confirmFor" lines, which one did the operator mean?
func parseYAML(data []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	switch m := doc.(type) {
	case nil: // an empty file, or only comments
		return map[string]any{}, nil
	case map[string]any:
		return normalize(m).(map[string]any), nil
	default:
		return nil, &Error{Problems: []Problem{{Message: "the document must be a mapping of keys (got " + describeValue(doc) + ")"}}}
	}
}

// normalize turns JSON numbers into int64 or float64 and drops keys without
// a value ("engine:" alone means: keep the defaults).
func normalize(x any) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			if v == nil {
				delete(x, k)
				continue
			}
			x[k] = normalize(v)
		}
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	}
	return x
}

// checkKeys reports every key of the file that Config does not have, with
// the file's own spelling and a guess at the intended key. Matching is exact:
// keys are camelCase, and "confirmfor" is as much a typo as "confirmFr".
func checkKeys(raw map[string]any) error {
	var probs []Problem
	checkKeysIn(raw, reflect.TypeFor[Config](), "", &probs)
	if len(probs) == 0 {
		return nil
	}
	return &Error{Problems: probs}
}

func checkKeysIn(x any, t reflect.Type, path string, probs *[]Problem) {
	switch {
	case t.Kind() == reflect.Struct && t != durationType():
		m, ok := x.(map[string]any)
		if !ok {
			return // a type error; decode reports it
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			if name := tagName(t.Field(i)); name != "" {
				fields[name] = t.Field(i).Type
				names = append(names, name)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := joinPath(path, k)
			ft, ok := fields[k]
			if !ok {
				msg := "unknown key"
				if hint := removedKey(t, path, k); hint != "" {
					msg += " (" + hint + ")"
				} else if s := suggest(k, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", joinPath(path, s))
				}
				*probs = append(*probs, Problem{Key: p, Message: msg})
				continue
			}
			checkKeysIn(m[k], ft, p, probs)
		}
	case t.Kind() == reflect.Slice:
		l, ok := x.([]any)
		if !ok {
			return
		}
		for i, e := range l {
			checkKeysIn(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), probs)
		}
	}
}

// removedKey says where a key of an earlier release went, or "".
func removedKey(t reflect.Type, path, key string) string {
	switch {
	case t == reflect.TypeFor[Cloud]() && key == "placement":
		return "removed: zones, machine and disk settings are per provider now, in cloud.sim, cloud.gcp and cloud.aws"
	case t == reflect.TypeFor[Validator]() && key == "placement":
		return "removed: choose this validator's providers with " + joinPath(path, "providers") + "; zones are per provider, in cloud.sim, cloud.gcp and cloud.aws"
	}
	return ""
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// suggest returns the known key closest to an unknown one, if close enough
// to be a typo.
func suggest(unknown string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, unknown) {
			return k
		}
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envSettings reads every settable key's environment variable and converts
// it to the key's type, so that a bad value names both the variable and the key.
func envSettings(keys []Key, getenv func(string) string) (map[string]any, error) {
	out := map[string]any{}
	var probs []Problem
	for _, k := range keys {
		if !k.Settable() {
			continue
		}
		s := getenv(k.Env)
		if s == "" {
			continue
		}
		val, want := parseEnv(k.Type, s)
		if want != "" {
			probs = append(probs, Problem{Key: k.Path, Message: fmt.Sprintf("%s: want %s (got %q)", k.Env, want, s)})
			continue
		}
		setPath(out, k.Path, val)
	}
	if len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	return out, nil
}

// parseEnv converts an environment value; want is non-empty when it does not
// parse and says what was expected.
func parseEnv(t reflect.Type, s string) (val any, want string) {
	s = strings.TrimSpace(s)
	if t == durationType() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, typeWant(t)
		}
		return d, ""
	}
	switch t.Kind() {
	case reflect.String:
		return s, ""
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, typeWant(t)
		}
		return b, ""
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, typeWant(t)
		}
		return i, ""
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, typeWant(t)
		}
		return f, ""
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			// Comma-separated. A matcher containing a comma cannot be set
			// this way; put it in the file.
			var l []string
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					l = append(l, p)
				}
			}
			return l, ""
		}
	}
	return nil, typeWant(t)
}

func setPath(m map[string]any, path string, val any) {
	segs := strings.Split(path, ".")
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = val
}

// decode decodes in into out. Strict decoding (for the file as written)
// refuses to turn numbers into strings and the like; weak decoding (for
// viper's merged settings) accepts the strings that flags carry. Errors name
// each key in camelCase and the value found there.
func decode(in any, out any, weak bool) error {
	hooks := []mapstructure.DecodeHookFunc{durationHook, wholeNumberHook}
	if weak {
		hooks = append(hooks, mapstructure.StringToSliceHookFunc(","))
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(hooks...),
		ErrorUnused:      true,
		WeaklyTypedInput: weak,
		Result:           out,
	})
	if err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if err := dec.Decode(in); err != nil {
		return decodeProblems(err, in)
	}
	return nil
}

// durationHook reads durations only from Go duration strings ("90s", "2m"):
// a bare 120 would otherwise become 120ns. A bare 0 is unambiguous and allowed.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType() || data == nil {
		return data, nil
	}
	switch d := data.(type) {
	case time.Duration:
		return d, nil
	case string:
		return time.ParseDuration(strings.TrimSpace(d))
	case int64:
		if d == 0 {
			return time.Duration(0), nil
		}
	case int:
		if d == 0 {
			return time.Duration(0), nil
		}
	}
	return nil, errors.New("not a duration")
}

// wholeNumberHook refuses to truncate 1.5 to an integer.
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.Float64 || (to.Kind() != reflect.Int && to.Kind() != reflect.Int64) || to == durationType() {
		return data, nil
	}
	f, ok := data.(float64)
	if !ok {
		return data, nil
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return nil, errors.New("not a whole number")
	}
	return int64(f), nil
}

// decodeProblems turns mapstructure's error tree into one Problem per key.
func decodeProblems(err error, src any) error {
	var probs []Problem
	var visit func(error)
	visit = func(e error) {
		switch u := e.(type) {
		case *mapstructure.DecodeError:
			inner := u.Unwrap()
			if _, nested := inner.(*mapstructure.DecodeError); nested {
				visit(inner)
				return
			}
			if _, joined := inner.(interface{ Unwrap() []error }); joined {
				visit(inner)
				return
			}
			probs = append(probs, decodeProblem(u, src))
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				visit(c)
			}
		case interface{ Unwrap() error }:
			visit(u.Unwrap())
		default:
			probs = append(probs, Problem{Message: e.Error()})
		}
	}
	visit(err)
	slices.SortStableFunc(probs, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
	return &Error{Problems: slices.Compact(probs)}
}

func decodeProblem(de *mapstructure.DecodeError, src any) Problem {
	key, t, ok := resolvePath(de.Name())
	msg := de.Unwrap().Error()
	if strings.HasPrefix(msg, "has invalid keys: ") {
		// Not reached through Load (checkKeys runs first); kept so a key
		// that slips through still fails loudly, in camelCase.
		var unknown []string
		for _, k := range strings.Split(strings.TrimPrefix(msg, "has invalid keys: "), ", ") {
			unknown = append(unknown, joinPath(key, k))
		}
		return Problem{Key: key, Message: "unknown keys: " + strings.Join(unknown, ", ")}
	}
	if !ok {
		return Problem{Key: key, Message: msg}
	}
	got := "nothing"
	if val, found := lookup(src, key); found {
		got = describeValue(val)
		switch val.(type) {
		case int64, float64:
			if t.Kind() == reflect.String {
				// YAML read it as a number: version 1.10 became 1.1.
				got += "; quote it"
			}
		}
	}
	return Problem{Key: key, Message: fmt.Sprintf("want %s (got %s)", typeWant(t), got)}
}

// lookup finds the value at a key path in decoded YAML or viper settings,
// ignoring case.
func lookup(x any, path string) (any, bool) {
	if path == "" {
		return x, true
	}
	for _, seg := range strings.Split(path, ".") {
		name, idx := seg, ""
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name, idx = seg[:i], seg[i:]
		}
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		found := false
		for k, v := range m {
			if strings.EqualFold(k, name) {
				x, found = v, true
				break
			}
		}
		if !found {
			return nil, false
		}
		for idx != "" {
			end := strings.IndexByte(idx, ']')
			if end < 0 {
				return nil, false
			}
			switch c := x.(type) {
			case []any:
				n, err := strconv.Atoi(idx[1:end])
				if err != nil || n < 0 || n >= len(c) {
					return nil, false
				}
				x = c[n]
			case map[string]any: // mapstructure names map entries labels[name]
				v, ok := c[idx[1:end]]
				if !ok {
					return nil, false
				}
				x = v
			default:
				return nil, false
			}
			idx = idx[end+1:]
		}
	}
	return x, true
}

// typeWant says in words what a key of type t takes.
func typeWant(t reflect.Type) string {
	if t == durationType() {
		return "a duration such as 30s, 2m or 1h30m"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "a list of mappings"
		}
		return "a list of strings"
	case reflect.Map:
		return "a mapping of strings to strings"
	case reflect.Struct:
		return "a mapping of keys"
	}
	return t.String()
}

// describeValue shows a value from the file in an error message.
func describeValue(x any) string {
	switch x := x.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case []string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(x)
}
