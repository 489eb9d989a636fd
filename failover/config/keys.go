package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// EnvPrefix starts every environment variable failoverd reads for its
// configuration.
const EnvPrefix = "FAILOVERD_"

// Key describes one configuration key. The list comes from walking Config's
// mapstructure tags, so a field added to Config gets its environment variable,
// its flag name and its line in the docs test without anyone remembering to.
type Key struct {
	// Path is the camelCase key path as written in YAML, e.g. "engine.confirmFor".
	// Keys inside the fleet list are written "fleet[].name".
	Path string
	// Env is the environment variable (FAILOVERD_ENGINE_CONFIRM_FOR). Empty for
	// the fleet and for maps, which only a file can set.
	Env string
	// Flag is the command-line flag name that Load binds when the FlagSet has
	// it (engine-confirm-for). Empty where Env is empty.
	Flag string
	// Type is the Go type of the field.
	Type reflect.Type
	// Default is Default()'s value, formatted as it is written in YAML
	// (durations as "2m", lists comma-separated). Empty inside the fleet.
	Default string
}

// Settable reports whether the key can come from the environment and flags
// (and so is handed to viper); the fleet and maps only come from a file.
func (k Key) Settable() bool { return k.Env != "" }

// Keys lists every configuration key, sections excluded, in struct order.
func Keys() []Key {
	var keys []Key
	walkKeys(reflect.TypeFor[Config](), reflect.ValueOf(Default()), "", true, &keys)
	return keys
}

func walkKeys(t reflect.Type, def reflect.Value, prefix string, settable bool, out *[]Key) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := tagName(f)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		var fv reflect.Value
		if def.IsValid() {
			fv = def.Field(i)
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType():
			walkKeys(ft, fv, path, settable, out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			// The list itself is a key (so the docs show it); its entries'
			// keys follow. Neither has an environment variable: a list of
			// records does not fit in one.
			*out = append(*out, Key{Path: path, Type: ft, Default: formatDefault(fv)})
			walkKeys(ft.Elem(), reflect.Value{}, path+"[]", false, out)
		default:
			k := Key{Path: path, Type: ft}
			if fv.IsValid() {
				k.Default = formatDefault(fv)
			}
			if settable && ft.Kind() != reflect.Map {
				k.Env = EnvVar(path)
				k.Flag = FlagName(path)
			}
			*out = append(*out, k)
		}
	}
}

func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// durationType is time.Duration's type; a function, not a variable, to keep the
// package free of globals.
func durationType() reflect.Type { return reflect.TypeFor[time.Duration]() }

// EnvVar is the environment variable for a key path:
// engine.confirmFor -> FAILOVERD_ENGINE_CONFIRM_FOR.
func EnvVar(path string) string {
	return EnvPrefix + strings.ToUpper(splitPath(path, '_'))
}

// FlagName is the command-line flag for a key path, its kebab case:
// dataDir -> data-dir, engine.confirmFor -> engine-confirm-for.
func FlagName(path string) string {
	return strings.ToLower(splitPath(path, '-'))
}

// splitPath splits every segment of a camelCase path into words joined by
// sep, and the segments too: notify.alertmanagerURL -> notify_alertmanager_URL.
// An upper-case run is one word (URL, GB), ending before an upper-case letter
// that starts a lower-case word (URLPath -> URL_Path).
func splitPath(path string, sep rune) string {
	var b strings.Builder
	rs := []rune(path)
	for i, r := range rs {
		if r == '.' {
			b.WriteRune(sep)
			continue
		}
		if i > 0 && unicode.IsUpper(r) {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteRune(sep)
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// formatDefault writes a default the way a person writes it in YAML, so the
// docs show values one can copy.
func formatDefault(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if v.Type() == durationType() {
		return formatDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	case reflect.Map:
		if v.Len() == 0 {
			return "{}"
		}
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration drops the zero tails of time.Duration.String: 2m0s -> 2m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// resolvePath follows a key path through Config's types, matching segments
// without regard to case (viper lowercases every key it stores). It returns
// the path spelled as the struct tags spell it, list indexes kept
// ("fleet[2].clients"), and the type found there. ok is false when some
// segment names no field.
func resolvePath(path string) (camel string, t reflect.Type, ok bool) {
	t = reflect.TypeFor[Config]()
	if path == "" {
		return "", t, true
	}
	var out []string
	for _, seg := range strings.Split(path, ".") {
		name, idx := seg, ""
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name, idx = seg[:i], seg[i:]
		}
		if t.Kind() != reflect.Struct || t == durationType() {
			return path, nil, false
		}
		found := false
		for i := range t.NumField() {
			f := t.Field(i)
			if tag := tagName(f); tag != "" && strings.EqualFold(tag, name) {
				name, t, found = tag, f.Type, true
				break
			}
		}
		if !found {
			return path, nil, false
		}
		for n := strings.Count(idx, "["); n > 0; n-- {
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
				return path, nil, false
			}
			t = t.Elem()
		}
		out = append(out, name+idx)
	}
	return strings.Join(out, "."), t, true
}

// camelPath spells a (possibly lowercased) key path the way the YAML does;
// paths that name no key come back unchanged.
func camelPath(path string) string {
	camel, _, _ := resolvePath(path)
	return camel
}
