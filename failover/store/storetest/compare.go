package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// diff lists every difference between want and got, one line per leaf, so a
// failing round trip names the field a store dropped. Times compare with
// Equal: a store may hand back another *time.Location for the same instant
// (the Kubernetes API does), and that is not a difference. A nil slice or map
// equals an empty one for the same reason: JSON "null" and "[]" are the same
// record to every reader.
func diff(want, got any) []string {
	var out []string
	walk("", reflect.ValueOf(want), reflect.ValueOf(got), &out)
	return out
}

func walk(path string, w, g reflect.Value, out *[]string) {
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		if !wt.Equal(gt) {
			*out = append(*out, fmt.Sprintf("%s: want %s, got %s", name(path), wt.Format(time.RFC3339Nano), gt.Format(time.RFC3339Nano)))
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer:
		switch {
		case w.IsNil() && g.IsNil():
		case w.IsNil():
			*out = append(*out, fmt.Sprintf("%s: want nil, got %+v", name(path), g.Elem().Interface()))
		case g.IsNil():
			*out = append(*out, fmt.Sprintf("%s: want %+v, got nil", name(path), w.Elem().Interface()))
		default:
			walk(path, w.Elem(), g.Elem(), out)
		}
	case reflect.Struct:
		for i := range w.NumField() {
			f := w.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			walk(path+"."+f.Name, w.Field(i), g.Field(i), out)
		}
	case reflect.Slice:
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: want %d elements, got %d", name(path), w.Len(), g.Len()))
		}
		for i := range min(w.Len(), g.Len()) {
			walk(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i), out)
		}
	case reflect.Map:
		for _, k := range w.MapKeys() {
			gv := g.MapIndex(k)
			if !gv.IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: missing", name(path), k))
				continue
			}
			walk(fmt.Sprintf("%s[%v]", path, k), w.MapIndex(k), gv, out)
		}
		for _, k := range g.MapKeys() {
			if !w.MapIndex(k).IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: unexpected %+v", name(path), k, g.MapIndex(k).Interface()))
			}
		}
	default:
		if w.Interface() != g.Interface() {
			*out = append(*out, fmt.Sprintf("%s: want %#v, got %#v", name(path), w.Interface(), g.Interface()))
		}
	}
}

// unset lists the fields of v left at their zero value (nil pointers, empty
// slices and maps included), except the paths in skip. The round-trip fixtures
// must set every field, or a store that drops a field added later would still
// pass; this makes adding a field without extending the fixture fail loudly.
func unset(v any, skip ...string) []string {
	var out []string
	zeros("", reflect.ValueOf(v), skip, &out)
	return out
}

func zeros(path string, v reflect.Value, skip []string, out *[]string) {
	if slices.Contains(skip, name(path)) {
		return
	}
	if v.Type() == timeType {
		if v.Interface().(time.Time).IsZero() {
			*out = append(*out, name(path))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			*out = append(*out, name(path))
			return
		}
		zeros(path, v.Elem(), skip, out)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				zeros(path+"."+f.Name, v.Field(i), skip, out)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			*out = append(*out, name(path))
		}
		for i := range v.Len() {
			zeros(fmt.Sprintf("%s[%d]", path, i), v.Index(i), skip, out)
		}
	case reflect.Map:
		if v.Len() == 0 {
			*out = append(*out, name(path))
		}
		for _, k := range v.MapKeys() {
			zeros(fmt.Sprintf("%s[%v]", path, k), v.MapIndex(k), skip, out)
		}
	default:
		if v.IsZero() {
			*out = append(*out, name(path))
		}
	}
}

func name(path string) string {
	if path == "" {
		return "value"
	}
	if path[0] == '.' {
		return path[1:]
	}
	return path
}
