package keymanager_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/keymanager"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
)

func pk(n int) string { return fmt.Sprintf("0x%096x", n) }

func newClient(t *testing.T, s *keymanagertest.Server, opts ...keymanager.Option) *keymanager.Client {
	t.Helper()
	c, err := keymanager.New(s.URL, s.Token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type interchange struct {
	Metadata struct {
		Version string `json:"interchange_format_version"`
		Root    string `json:"genesis_validators_root"`
	} `json:"metadata"`
	Data []struct {
		Pubkey string `json:"pubkey"`
		Blocks []struct {
			Slot string `json:"slot"`
		} `json:"signed_blocks"`
	} `json:"data"`
}

func TestDeleteAndFenced(t *testing.T) {
	hist := keymanagertest.History{Blocks: []uint64{100, 200}, Attestations: []keymanagertest.Attestation{{Source: 5, Target: 6}}}
	tests := []struct {
		name       string
		setup      func(s *keymanagertest.Server)
		keys       []string
		want       []keymanager.DeleteStatus
		fenced     bool
		errHas     []string // in the Fenced error
		protection []string // pubkeys expected in the interchange
	}{
		{
			name:  "all active: deleted",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), hist); s.AddKey(pk(2), hist) },
			keys:  []string{pk(1), pk(2)}, want: []keymanager.DeleteStatus{keymanager.Deleted, keymanager.Deleted},
			fenced: true, protection: []string{pk(1), pk(2)},
		},
		{
			name:  "inactive key with slashing protection: not_active",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), hist); s.AddInactiveKey(pk(2), hist) },
			keys:  []string{pk(1), pk(2)}, want: []keymanager.DeleteStatus{keymanager.Deleted, keymanager.NotActive},
			fenced: true, protection: []string{pk(1), pk(2)},
		},
		{
			name:  "unknown key: not_found refuses",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), hist) },
			keys:  []string{pk(1), pk(3)}, want: []keymanager.DeleteStatus{keymanager.Deleted, keymanager.NotFound},
			errHas: []string{pk(3) + ": not_found"}, protection: []string{pk(1)},
		},
		{
			name:  "key that cannot be stopped: error refuses",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), hist); s.FailKey(pk(1), "signer busy") },
			keys:  []string{pk(1)}, want: []keymanager.DeleteStatus{keymanager.DelError},
			errHas: []string{pk(1) + ": error (signer busy)"},
		},
		{
			name:  "readonly key: error refuses",
			setup: func(s *keymanagertest.Server) { s.AddReadonlyKey(pk(4)) },
			keys:  []string{pk(4)}, want: []keymanager.DeleteStatus{keymanager.DelError},
			errHas: []string{pk(4) + ": error", "read-only"},
		},
		{
			name: "mixed: each bad key named",
			setup: func(s *keymanagertest.Server) {
				s.AddKey(pk(1), hist)
				s.AddKey(pk(2), hist)
				s.FailKey(pk(2), "stuck")
			},
			keys:   []string{pk(1), pk(2), pk(3)},
			want:   []keymanager.DeleteStatus{keymanager.Deleted, keymanager.DelError, keymanager.NotFound},
			errHas: []string{"2 key(s)", pk(2) + ": error (stuck)", pk(3) + ": not_found"}, protection: []string{pk(1)},
		},
		{
			name:  "second delete of the same keys: not_active, protection still returned",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), hist); s.AddInactiveKey(pk(2), hist) },
			keys:  []string{pk(2)}, want: []keymanager.DeleteStatus{keymanager.NotActive},
			fenced: true, protection: []string{pk(2)},
		},
		{
			name:  "upper-case hex pubkey",
			setup: func(s *keymanagertest.Server) { s.AddKey(pk(0xabc), hist) },
			keys:  []string{strings.ToUpper(pk(0xabc))[0:1] + "x" + strings.ToUpper(pk(0xabc))[2:]},
			want:  []keymanager.DeleteStatus{keymanager.Deleted}, fenced: true, protection: []string{pk(0xabc)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := keymanagertest.New(t)
			tc.setup(s)
			c := newClient(t, s)
			res, err := c.DeleteKeystores(context.Background(), tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Keys) != len(tc.want) {
				t.Fatalf("got %d statuses, want %d", len(res.Keys), len(tc.want))
			}
			for i, k := range res.Keys {
				if k.Status != tc.want[i] || k.Pubkey != tc.keys[i] {
					t.Errorf("key %d: got %s %s, want %s %s", i, k.Pubkey, k.Status, tc.keys[i], tc.want[i])
				}
			}
			ferr := keymanager.Fenced(res, tc.keys)
			if tc.fenced != (ferr == nil) {
				t.Fatalf("Fenced = %v, want fenced=%v", ferr, tc.fenced)
			}
			if ferr != nil {
				if !errors.Is(ferr, keymanager.ErrNotFenced) {
					t.Errorf("not ErrNotFenced: %v", ferr)
				}
				for _, h := range tc.errHas {
					if !strings.Contains(ferr.Error(), h) {
						t.Errorf("error %q lacks %q", ferr, h)
					}
				}
			}
			var ic interchange
			if err := json.Unmarshal([]byte(res.SlashingProtection), &ic); err != nil {
				t.Fatalf("slashing protection not JSON: %v", err)
			}
			if ic.Metadata.Version != "5" || ic.Metadata.Root != keymanagertest.DefaultRoot {
				t.Errorf("metadata %+v", ic.Metadata)
			}
			var got []string
			for _, d := range ic.Data {
				got = append(got, d.Pubkey)
				if len(d.Blocks) != 2 {
					t.Errorf("%s: %d blocks, want 2", d.Pubkey, len(d.Blocks))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.protection, ",") {
				t.Errorf("protection for %v, want %v", got, tc.protection)
			}
			// A key reported error is still signing; deleted ones are not.
			for i, k := range res.Keys {
				if k.Status == keymanager.Deleted && s.Active(tc.keys[i]) {
					t.Errorf("%s deleted but still active", tc.keys[i])
				}
				if k.Status == keymanager.DelError && !s.Active(tc.keys[i]) {
					t.Errorf("%s error but not active", tc.keys[i])
				}
			}
		})
	}
}

func TestSlashingProtectionReturnedVerbatim(t *testing.T) {
	const sp = `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},  "data":[]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]any{"data": []any{map[string]string{"status": "deleted"}}, "slashing_protection": sp})
		w.Write(b)
	}))
	defer srv.Close()
	c, _ := keymanager.New(srv.URL, "tok")
	res, err := c.DeleteKeystores(context.Background(), []string{pk(1)})
	if err != nil {
		t.Fatal(err)
	}
	if res.SlashingProtection != sp {
		t.Errorf("slashing protection changed:\n%s\n%s", res.SlashingProtection, sp)
	}
}

func TestFencedDecision(t *testing.T) {
	st := func(p string, s keymanager.DeleteStatus) keymanager.KeyDeleteStatus {
		return keymanager.KeyDeleteStatus{Pubkey: p, Status: s}
	}
	tests := []struct {
		name   string
		res    keymanager.DeleteResult
		keys   []string
		errHas string // "" = fenced
	}{
		{"deleted and not_active", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "deleted"), st(pk(2), "not_active")}}, []string{pk(1), pk(2)}, ""},
		{"key missing from result", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "deleted")}}, []string{pk(1), pk(2)}, pk(2) + ": missing"},
		{"unknown status", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "paused")}}, []string{pk(1)}, `unknown status "paused"`},
		{"empty status", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "")}}, []string{pk(1)}, `unknown status ""`},
		{"repeated status", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "deleted"), st(pk(1), "error")}}, []string{pk(1)}, "ambiguous"},
		{"no keys asked", keymanager.DeleteResult{}, nil, "no keys asked for"},
		{"not_found", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st(pk(1), "not_found")}}, []string{pk(1)}, "not_found"},
		{"case-insensitive", keymanager.DeleteResult{Keys: []keymanager.KeyDeleteStatus{st("0x"+strings.Repeat("AB", 48), "deleted")}}, []string{"0x" + strings.Repeat("ab", 48)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := keymanager.Fenced(tc.res, tc.keys)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("want fenced, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !errors.Is(err, keymanager.ErrNotFenced) {
				t.Fatalf("got %v, want error with %q", err, tc.errHas)
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(s *keymanagertest.Server)
		token  string
		want   error
		status int
	}{
		{"wrong token 403", nil, "deadbeef", keymanager.ErrForbidden, 403},
		{"500", func(s *keymanagertest.Server) { s.Fail(500) }, "", keymanager.ErrServer, 500},
		{"400", func(s *keymanagertest.Server) { s.Fail(400) }, "", keymanager.ErrBadRequest, 400},
		{"401 from server", func(s *keymanagertest.Server) { s.Fail(401) }, "", keymanager.ErrUnauthorized, 401},
		{"unexpected 502", func(s *keymanagertest.Server) { s.Fail(502) }, "", keymanager.ErrUnexpected, 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := keymanagertest.New(t)
			s.AddKey(pk(1), keymanagertest.History{})
			if tc.setup != nil {
				tc.setup(s)
			}
			tok := s.Token
			if tc.token != "" {
				tok = tc.token
			}
			c, err := keymanager.New(s.URL, tok)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			_, e1 := c.ListKeystores(ctx)
			_, e2 := c.DeleteKeystores(ctx, []string{pk(1)})
			_, e3 := c.ImportKeystores(ctx, []string{keymanagertest.NewKeystore(pk(2), "pw")}, []string{"pw"}, "")
			for i, err := range []error{e1, e2, e3} {
				var ae *keymanager.APIError
				if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.StatusCode != tc.status {
					t.Errorf("call %d: got %v, want %v", i, err, tc.want)
				}
				if ae != nil && ae.Message == "" {
					t.Errorf("call %d: ErrorResponse message not read", i)
				}
				if err != nil && strings.Contains(err.Error(), s.Token) {
					t.Errorf("call %d: token in error", i)
				}
			}
			if !s.Active(pk(1)) {
				t.Error("key deleted despite the error")
			}
		})
	}
}

func TestNoTokenIs401(t *testing.T) {
	s := keymanagertest.New(t)
	resp, err := http.Get(s.URL + "/eth/v1/keystores")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

func TestTimeoutAndBodyLimit(t *testing.T) {
	s := keymanagertest.New(t)
	s.AddKey(pk(1), keymanagertest.History{Blocks: []uint64{1, 2, 3}})
	s.Delay(2 * time.Second)
	c := newClient(t, s, keymanager.WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.DeleteKeystores(context.Background(), []string{pk(1)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	// ctx deadline also bounds.
	c2 := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c2.ListKeystores(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	s.Delay(0)
	c3 := newClient(t, s, keymanager.WithMaxBodyBytes(64))
	if _, err := c3.DeleteKeystores(context.Background(), []string{pk(1)}); !errors.Is(err, keymanager.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestImport(t *testing.T) {
	root := keymanagertest.DefaultRoot
	sp := keymanagertest.Interchange(root, map[string]keymanagertest.History{pk(1): {Blocks: []uint64{77}}})
	tests := []struct {
		name      string
		setup     func(s *keymanagertest.Server)
		keystores []string
		passwords []string
		sp        string
		want      []keymanager.ImportState
		wantErr   error
		imported  bool // AllImported nil
	}{
		{name: "imported with protection", keystores: []string{keymanagertest.NewKeystore(pk(1), "correct horse")}, passwords: []string{"correct horse"}, sp: sp,
			want: []keymanager.ImportState{keymanager.Imported}, imported: true},
		{name: "duplicate", setup: func(s *keymanagertest.Server) { s.AddKey(pk(1), keymanagertest.History{}) },
			keystores: []string{keymanagertest.NewKeystore(pk(1), "pw")}, passwords: []string{"pw"},
			want: []keymanager.ImportState{keymanager.Duplicate}},
		{name: "wrong password: error", keystores: []string{keymanagertest.NewKeystore(pk(1), "pw"), keymanagertest.NewKeystore(pk(2), "pw2")}, passwords: []string{"nope", "pw2"},
			want: []keymanager.ImportState{keymanager.ImpError, keymanager.Imported}},
		{name: "not a keystore: error", keystores: []string{`{"hello":"world"}`}, passwords: []string{"pw"},
			want: []keymanager.ImportState{keymanager.ImpError}},
		{name: "protection for another network: 400", keystores: []string{keymanagertest.NewKeystore(pk(1), "pw")}, passwords: []string{"pw"},
			sp: keymanagertest.Interchange("0x"+strings.Repeat("11", 32), nil), wantErr: keymanager.ErrBadRequest},
		{name: "lengths differ: nothing sent", keystores: []string{keymanagertest.NewKeystore(pk(1), "pw")}, passwords: nil, wantErr: keymanager.ErrInvalidArgument},
		{name: "no keystores: nothing sent", wantErr: keymanager.ErrInvalidArgument},
		{name: "keystore not JSON: nothing sent", keystores: []string{"nope"}, passwords: []string{"pw"}, wantErr: keymanager.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := keymanagertest.New(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			c := newClient(t, s)
			before := len(s.Exchanges())
			got, err := c.ImportKeystores(context.Background(), tc.keystores, tc.passwords, tc.sp)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				for _, p := range tc.passwords {
					if p != "" && strings.Contains(err.Error(), p) {
						t.Error("password in error")
					}
				}
				if errors.Is(err, keymanager.ErrInvalidArgument) && len(s.Exchanges()) != before {
					t.Error("request sent despite invalid argument")
				}
				if len(s.ActiveKeys()) != 0 && tc.setup == nil {
					t.Error("something imported")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v", got)
			}
			for i := range got {
				if got[i].Status != tc.want[i] {
					t.Errorf("%d: %s, want %s (%s)", i, got[i].Status, tc.want[i], got[i].Message)
				}
				if got[i].Status == keymanager.ImpError && got[i].Message == "" {
					t.Errorf("%d: error without message", i)
				}
			}
			if err := keymanager.AllImported(got, len(tc.keystores)); (err == nil) != tc.imported {
				t.Errorf("AllImported = %v", err)
			} else if err != nil && !errors.Is(err, keymanager.ErrNotImported) {
				t.Errorf("AllImported error not ErrNotImported: %v", err)
			}
			if tc.sp != "" && tc.imported {
				if h, _ := s.HistoryOf(pk(1)); len(h.Blocks) != 1 || h.Blocks[0] != 77 {
					t.Errorf("slashing protection not imported: %+v", h)
				}
			}
		})
	}
}

func TestListAndTLS(t *testing.T) {
	s := keymanagertest.New(t, keymanagertest.WithTLS())
	s.AddKey(pk(2), keymanagertest.History{})
	s.AddKey(pk(1), keymanagertest.History{})
	s.AddReadonlyKey(pk(3))
	s.AddInactiveKey(pk(4), keymanagertest.History{})
	c := newClient(t, s, keymanager.WithHTTPClient(s.Client()))
	keys, err := c.ListKeystores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].ValidatingPubkey != pk(1) || !keys[2].Readonly || keys[0].DerivationPath == "" {
		t.Fatalf("got %+v", keys)
	}
	// Without trusting the certificate the call fails.
	c2 := newClient(t, s)
	if _, err := c2.ListKeystores(context.Background()); err == nil {
		t.Fatal("untrusted TLS accepted")
	}
}

func TestInvalidArguments(t *testing.T) {
	s := keymanagertest.New(t)
	c := newClient(t, s)
	for name, keys := range map[string][]string{
		"none":                 nil,
		"no 0x":                {strings.Repeat("a", 96)},
		"short":                {"0xabcd"},
		"non-hex":              {"0x" + strings.Repeat("g", 96)},
		"duplicate (any case)": {pk(1), "0x" + strings.ToUpper(pk(1)[2:])},
	} {
		if _, err := c.DeleteKeystores(context.Background(), keys); !errors.Is(err, keymanager.ErrInvalidArgument) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if n := len(s.Exchanges()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	for _, u := range []string{"", "ftp://x", "localhost:5062", "http://"} {
		if _, err := keymanager.New(u, "t"); !errors.Is(err, keymanager.ErrInvalidArgument) {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	if _, err := keymanager.New("http://127.0.0.1:1", "  \n"); !errors.Is(err, keymanager.ErrInvalidArgument) {
		t.Error("empty token accepted")
	}
}

func TestMalformedReplies(t *testing.T) {
	tests := []struct {
		name, body string
		keys       int
		want       error
	}{
		{"no slashing_protection", `{"data":[{"status":"deleted"}]}`, 1, keymanager.ErrMalformed},
		{"no data", `{"slashing_protection":"{}"}`, 1, keymanager.ErrMalformed},
		{"fewer statuses", `{"data":[{"status":"deleted"}],"slashing_protection":"{}"}`, 2, keymanager.ErrMalformed},
		{"more statuses", `{"data":[{"status":"deleted"},{"status":"deleted"}],"slashing_protection":"{}"}`, 1, keymanager.ErrMalformed},
		{"entry without status", `{"data":[{}],"slashing_protection":"{}"}`, 1, keymanager.ErrMalformed},
		{"not JSON", `<html>`, 1, keymanager.ErrMalformed},
		{"status wrong type", `{"data":[{"status":1}],"slashing_protection":"{}"}`, 1, keymanager.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.body)) }))
			defer srv.Close()
			c, _ := keymanager.New(srv.URL, "tok")
			keys := []string{pk(1), pk(2)}[:tc.keys]
			res, err := c.DeleteKeystores(context.Background(), keys)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if keymanager.Fenced(res, keys) == nil {
				t.Fatal("malformed reply counted as fenced")
			}
		})
	}
	// Import and list too.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":[{"message":"x"}]}`))
	}))
	defer srv.Close()
	c, _ := keymanager.New(srv.URL, "tok")
	if _, err := c.ImportKeystores(context.Background(), []string{"{}"}, []string{"p"}, ""); !errors.Is(err, keymanager.ErrMalformed) {
		t.Errorf("import: %v", err)
	}
	if _, err := c.ListKeystores(context.Background()); !errors.Is(err, keymanager.ErrMalformed) {
		t.Errorf("list: %v", err)
	}
}
