package cometbfttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
)

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// shape lists every member path of a JSON document with its JSON type;
// array elements share the path "[]".
func shape(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	out := map[string]string{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			out[p] = "object"
			for k, e := range x {
				walk(p+"."+k, e)
			}
		case []any:
			out[p] = "array"
			for _, e := range x {
				walk(p+"[]", e)
			}
		case string:
			out[p] = "string"
		case float64:
			out[p] = "number"
		case bool:
			out[p] = "bool"
		case nil:
			// signature is null on absent entries and a string otherwise
			if _, ok := out[p]; !ok {
				out[p] = "null"
			}
		}
	}
	walk("", v)
	return out
}

// TestRepliesHaveCometBFTShapes: the fake's replies have exactly the
// members, and member types, of the replies in ../testdata, which follow
// CometBFT's RPC (rpc/openapi/openapi.yaml and the amino JSON encoding:
// int64 as strings).
func TestRepliesHaveCometBFTShapes(t *testing.T) {
	s := New(t)
	for i, pk := range []byte{3, 1, 2} {
		s.AddValidator(Validator{PubKey: append(make([]byte, 95), pk), Power: int64(10 - i)})
	}
	head, _ := s.Head()
	s.SetVote(head-1, s.sorted()[2].Address, FlagAbsent)
	s.SetVote(head-1, s.sorted()[1].Address, FlagAggCommitAbsent)
	for _, c := range []struct{ sample, path string }{
		{"status.json", "/status"},
		{"commit.json", fmt.Sprintf("/commit?height=%d", head-1)},
		{"validators.json", fmt.Sprintf("/validators?height=%d&page=1&per_page=100", head)},
		{"error-height.json", fmt.Sprintf("/commit?height=%d", head+1)},
	} {
		want, err := os.ReadFile("../testdata/" + c.sample)
		if err != nil {
			t.Fatal(err)
		}
		code, got := get(t, s.URL+c.path)
		if wantCode := map[bool]int{true: 500, false: 200}[strings.HasPrefix(c.sample, "error")]; code != wantCode {
			t.Fatalf("%s: HTTP %d", c.path, code)
		}
		ws, gs := shape(t, want), shape(t, got)
		var diff []string
		for p, typ := range ws {
			if g, ok := gs[p]; !ok || (g != typ && g != "null" && typ != "null") {
				diff = append(diff, fmt.Sprintf("%s: want %s, got %q", p, typ, g))
			}
		}
		for p, typ := range gs {
			if _, ok := ws[p]; !ok {
				diff = append(diff, fmt.Sprintf("%s: %s not in the sample", p, typ))
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("%s differs from %s:\n%s", c.path, c.sample, strings.Join(diff, "\n"))
		}
	}
}

func TestErrorsAndPaging(t *testing.T) {
	s := New(t)
	for i := 0; i < 45; i++ {
		s.AddValidator(Validator{PubKey: []byte{byte(i)}, Power: 1})
	}
	s.SetEarliest(900)
	for _, c := range []struct{ path, want string }{
		{"/commit?height=abc", `"code":-32602`},
		{"/commit?height=0", "greater than zero"},
		{"/commit?height=1001", "head of the blockchain"},
		{"/commit?height=899", "not available"},
		{"/validators?page=3", "page should be within [1, 2] range, given 3"},
		{"/v1/validators?page=0", "page should be within"},
	} {
		code, b := get(t, s.URL+c.path)
		if code != 500 || !strings.Contains(string(b), c.want) || !strings.Contains(string(b), `"id":-1`) {
			t.Errorf("%s: HTTP %d %s", c.path, code, b)
		}
	}
	count := func(path string) string {
		_, b := get(t, s.URL+path)
		var r struct {
			Result struct{ Count, Total string }
		}
		_ = json.Unmarshal(b, &r)
		return r.Result.Count + "/" + r.Result.Total
	}
	for path, want := range map[string]string{
		"/validators":                       "30/45",
		"/validators?page=2":                "15/45",
		"/validators?per_page=500":          "45/45",
		"/validators?per_page=%2220%22":     "20/45",
		"/v1/validators?page=2&per_page=40": "5/45",
	} {
		if got := count(path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if code, _ := get(t, s.URL+"/block"); code != 404 {
		t.Errorf("unknown route: HTTP %d", code)
	}
}
