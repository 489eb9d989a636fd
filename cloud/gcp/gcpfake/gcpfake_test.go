package gcpfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	f := map[string]string{"name": "fo-inc-1", "status": "RUNNING", "labels.managed-by": "failoverd", "labels.team": "eth"}
	cases := []struct {
		filter string
		want   bool
		bad    bool
	}{
		{"", true, false},
		{`name = "fo-inc-1"`, true, false},
		{`name = "fo-inc-2"`, false, false},
		{`labels.managed-by = "failoverd"`, true, false},
		{`(name = "fo-inc-1") AND (labels.managed-by = "failoverd")`, true, false},
		{`(name = "fo-inc-1") (labels.team = "other")`, false, false},
		{`labels.absent != "x"`, true, false},
		{`name eq fo-.*`, true, false},
		{`name ne fo-.*`, false, false},
		{`name = "a" OR name = "b"`, false, true},
		{`bogus = "x"`, false, true},
		{`(name = "x"`, false, true},
		{`name =`, false, true},
	}
	for _, tc := range cases {
		m, err := parseFilter(tc.filter)
		if (err != nil) != tc.bad {
			t.Errorf("parseFilter(%q) error = %v, want bad=%v", tc.filter, err, tc.bad)
			continue
		}
		if err == nil && m(f) != tc.want {
			t.Errorf("parseFilter(%q) matched %v, want %v", tc.filter, !tc.want, tc.want)
		}
	}
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func reason(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	errs, _ := e["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	return errs[0].(map[string]any)["reason"].(string)
}

func TestValidationAndDedupe(t *testing.T) {
	s := New()
	defer s.Close()
	base := s.URL() + "/compute/v1/projects/proj-1/global/firewalls"
	good := `{"name":"fo-p2p-x","network":"global/networks/default","allowed":[{"IPProtocol":"tcp","ports":["30303"]}],"sourceRanges":["0.0.0.0/0"],"targetTags":["x"]}`
	rid := "?requestId=6f1c1f9e-8a57-5d3c-9b0e-2f6a4c1d7e11"

	if code, m := post(t, base, good); code != 400 {
		t.Errorf("insert without requestId: %d %v, want 400", code, m)
	}
	if code, _ := post(t, base+rid, `{"name":"fo-p2p-x","network":"global/networks/default","allowed":[{"IPProtocol":"tcp"}],"bogusField":1}`); code != 400 {
		t.Errorf("unknown field: %d, want 400", code)
	}
	if code, _ := post(t, base+rid, `{"name":"Bad_Name","network":"global/networks/default","allowed":[{"IPProtocol":"tcp"}]}`); code != 400 {
		t.Errorf("bad name: %d, want 400", code)
	}
	code, op1 := post(t, base+rid, good)
	if code != 200 || op1["status"] != "PENDING" {
		t.Fatalf("insert: %d %v", code, op1)
	}
	code, op2 := post(t, base+rid, good)
	if code != 200 || op2["name"] != op1["name"] || s.Created("firewall") != 1 {
		t.Errorf("same requestId: %d %v; want the same operation, one rule", code, op2)
	}
	code, m := post(t, base+"?requestId=0b7f3a52-3f0e-5b8e-8f3c-7d7f5d0e9a11", good)
	if code != 409 || reason(m) != "alreadyExists" {
		t.Errorf("second insert under a new requestId: %d %v, want 409 alreadyExists", code, m)
	}
	s.FailNext("POST", "/global/firewalls", 403, "quotaExceeded", 1)
	code, m = post(t, base+"?requestId=1b7f3a52-3f0e-5b8e-8f3c-7d7f5d0e9a11", good)
	if code != 403 || reason(m) != "quotaExceeded" {
		t.Errorf("FailNext: %d %v", code, m)
	}
}
