package gcpfake

import (
	"regexp"
	"strings"
)

// parseFilter parses the subset of the Compute list filter syntax the
// provider uses: comparisons `field = "value"`, `field != "value"` (exact),
// `field eq regex`, `field ne regex` (RE2, whole value), on name, status,
// zone, network and labels.<key>; grouped in parentheses and joined by AND
// or by juxtaposition. OR and anything else is a 400, so a filter the fake
// does not understand fails a test rather than matching everything.
func parseFilter(s string) (func(map[string]string) bool, *apiError) {
	if strings.TrimSpace(s) == "" {
		return func(map[string]string) bool { return true }, nil
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, src: s}
	m, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.toks) {
		return nil, p.bad("unexpected %q", p.toks[p.i].v)
	}
	return m, nil
}

type token struct {
	v      string
	quoted bool
}

func tokenize(s string) ([]token, *apiError) {
	var out []token
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			i++
		case ch == '(' || ch == ')':
			out = append(out, token{v: string(ch)})
			i++
		case ch == '=':
			out = append(out, token{v: "="})
			i++
		case ch == '!' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{v: "!="})
			i += 2
		case ch == '"' || ch == '\'':
			j := i + 1
			var b strings.Builder
			for j < len(s) && s[j] != ch {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			if j >= len(s) {
				return nil, badRequest("Invalid value for field 'filter': '%s'. Unterminated string", s)
			}
			out = append(out, token{v: b.String(), quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n()=!\"'", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, badRequest("Invalid value for field 'filter': '%s'", s)
			}
			out = append(out, token{v: s[i:j]})
			i = j
		}
	}
	return out, nil
}

type parser struct {
	toks []token
	i    int
	src  string
}

func (p *parser) bad(format string, args ...any) *apiError {
	return badRequest("Invalid value for field 'filter': '%s'. "+format, append([]any{p.src}, args...)...)
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{}, false
}

func (p *parser) expr() (func(map[string]string) bool, *apiError) {
	var terms []func(map[string]string) bool
	for {
		t, ok := p.peek()
		if !ok || (t.v == ")" && !t.quoted) {
			break
		}
		if !t.quoted && t.v == "AND" {
			if len(terms) == 0 {
				return nil, p.bad("AND without a left side")
			}
			p.i++
			continue
		}
		if !t.quoted && (t.v == "OR" || t.v == "NOT") {
			return nil, p.bad("gcpfake does not support %s", t.v)
		}
		m, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, m)
	}
	if len(terms) == 0 {
		return nil, p.bad("empty expression")
	}
	return func(f map[string]string) bool {
		for _, m := range terms {
			if !m(f) {
				return false
			}
		}
		return true
	}, nil
}

var fieldRE = regexp.MustCompile(`^(name|status|zone|network|labels\.[a-z][a-z0-9_-]{0,62})$`)

func (p *parser) term() (func(map[string]string) bool, *apiError) {
	t, _ := p.peek()
	if t.v == "(" && !t.quoted {
		p.i++
		m, err := p.expr()
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.v != ")" || t.quoted {
			return nil, p.bad("missing )")
		}
		p.i++
		return m, nil
	}
	if p.i+3 > len(p.toks) {
		return nil, p.bad("incomplete comparison")
	}
	field, op, val := p.toks[p.i], p.toks[p.i+1], p.toks[p.i+2]
	p.i += 3
	if field.quoted || !fieldRE.MatchString(field.v) {
		return nil, p.bad("unsupported field %q", field.v)
	}
	if op.quoted {
		return nil, p.bad("expected an operator, got %q", op.v)
	}
	get := func(f map[string]string) (string, bool) { v, ok := f[field.v]; return v, ok }
	switch op.v {
	case "=":
		return func(f map[string]string) bool { v, ok := get(f); return ok && v == val.v }, nil
	case "!=":
		return func(f map[string]string) bool { v, ok := get(f); return !ok || v != val.v }, nil
	case "eq", "ne":
		re, err := regexp.Compile("^(?:" + val.v + ")$")
		if err != nil {
			return nil, p.bad("bad regular expression %q", val.v)
		}
		want := op.v == "eq"
		return func(f map[string]string) bool { v, _ := get(f); return re.MatchString(v) == want }, nil
	default:
		return nil, p.bad("unsupported operator %q", op.v)
	}
}
