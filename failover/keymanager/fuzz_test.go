package keymanager_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/failoverd/failoverd/failover/keymanager"
)

// replyServer answers every request with the status and body it is set to.
type replyServer struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (s *replyServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *replyServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status, body := s.status, s.body
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fuzzStatuses are the HTTP statuses a reply may carry, 200 most often.
var fuzzStatuses = []int{200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 500, 503}

const fuzzMaxBody = 4 << 10

// The Keymanager API definition's own examples (shared/specs/keymanager-apis,
// CC0) and replies a real validator client gives, as seeds.
var keymanagerSeeds = []string{
	`{"data":[{"validating_pubkey":"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a","derivation_path":"m/12381/3600/0/0/0","readonly":true}]}`,
	`{"data":[{"status":"imported"},{"status":"duplicate"},{"status":"error","message":"invalid password"}]}`,
	`{"data":[{"status":"deleted"},{"status":"not_active"},{"status":"not_found"}],"slashing_protection":"{\"metadata\":{\"interchange_format_version\":\"5\",\"genesis_validators_root\":\"0xcf8e0d4e9587369b2301d0790347320302cc0943d5a1884560367e8208d920f2\"},\"data\":[{\"pubkey\":\"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a\",\"signed_blocks\":[],\"signed_attestations\":[]}]}"}`,
	`{"data":[{"status":"deleted"}],"slashing_protection":""}`,
	`{"data":[{"status":"error","message":"key is locked"}],"slashing_protection":"{}"}`,
	`{"message":"invalid token","code":403}`,
	`{"data":null}`, `{"data":[{}]}`, `{"data":[{"status":1}]}`, `null`, `[]`, ``,
}

// FuzzReplies feeds the client arbitrary replies to list, delete and
// import. Errors are always typed (an *APIError for a non-200, otherwise
// ErrMalformed or ErrTooLarge); what is returned without error has the
// spec's shape: a status per key asked, in order; and the fencing and
// import decisions agree with an independent reading of the same reply:
// fenced only when every key came back deleted or not_active, imported only
// when every keystore came back imported.
func FuzzReplies(f *testing.F) {
	srv := &replyServer{}
	ts := httptest.NewServer(srv)
	f.Cleanup(ts.Close)
	c, err := keymanager.New(ts.URL, "fuzz-token", keymanager.WithMaxBodyBytes(fuzzMaxBody))
	if err != nil {
		f.Fatal(err)
	}
	for op := range uint8(3) {
		for _, s := range keymanagerSeeds {
			f.Add(op, uint8(0), uint8(3), []byte(s))
		}
		f.Add(op, uint8(6), uint8(0), []byte(keymanagerSeeds[5]))
	}
	f.Fuzz(func(t *testing.T, op, status, nkeys uint8, body []byte) {
		code := fuzzStatuses[int(status)%len(fuzzStatuses)]
		srv.set(code, body)
		n := 1 + int(nkeys)%4
		pubkeys := make([]string, n)
		for i := range pubkeys {
			pubkeys[i] = "0x" + strings.Repeat(string("abcd"[i]), 96)
		}
		var err error
		switch op % 3 {
		case 0:
			var keys []keymanager.Key
			keys, err = c.ListKeystores(context.Background())
			for _, k := range keys {
				if !keymanager.ValidPubkey(k.ValidatingPubkey) {
					t.Fatalf("listed %q", k.ValidatingPubkey)
				}
			}
		case 1:
			var res keymanager.DeleteResult
			res, err = c.DeleteKeystores(context.Background(), pubkeys)
			fenced := keymanager.Fenced(res, pubkeys) == nil
			if err != nil && fenced {
				t.Fatalf("fenced on a failed delete: %v", err)
			}
			if err == nil {
				if len(res.Keys) != n || res.Malformed != "" {
					t.Fatalf("%d statuses for %d keys (%q)", len(res.Keys), n, res.Malformed)
				}
				for i, k := range res.Keys {
					if k.Pubkey != pubkeys[i] {
						t.Fatalf("status %d is for %s, asked %s", i, k.Pubkey, pubkeys[i])
					}
				}
				want := true
				var reply struct {
					Data []struct {
						Status string `json:"status"`
					} `json:"data"`
				}
				if jerr := json.Unmarshal(body, &reply); jerr != nil {
					t.Fatalf("a delete reply that does not decode was accepted: %v", jerr)
				}
				for _, d := range reply.Data {
					want = want && (d.Status == "deleted" || d.Status == "not_active")
				}
				if fenced != want {
					t.Fatalf("Fenced = %v for a reply that says %s", fenced, body)
				}
			}
		default:
			keystores := make([]string, n)
			passwords := make([]string, n)
			for i := range keystores {
				keystores[i], passwords[i] = `{"version":4}`, "pw"
			}
			var st []keymanager.ImportStatus
			st, err = c.ImportKeystores(context.Background(), keystores, passwords, "")
			allImported := keymanager.AllImported(st, n) == nil
			if err != nil && allImported {
				t.Fatalf("every key imported on a failed import: %v", err)
			}
			if err == nil {
				if len(st) != n {
					t.Fatalf("%d statuses for %d keystores", len(st), n)
				}
				want := true
				for _, s := range st {
					want = want && s.Status == keymanager.Imported
				}
				if allImported != want {
					t.Fatalf("AllImported = %v for %+v", allImported, st)
				}
			}
		}
		if err == nil {
			if code != http.StatusOK {
				t.Fatalf("HTTP %d accepted", code)
			}
			return
		}
		var ae *keymanager.APIError
		switch {
		case errors.As(err, &ae):
			if code == http.StatusOK || ae.StatusCode != code {
				t.Fatalf("APIError %+v for HTTP %d", ae, code)
			}
		case code != http.StatusOK:
			t.Fatalf("HTTP %d gave an untyped error: %v", code, err)
		case !errors.Is(err, keymanager.ErrMalformed) && !errors.Is(err, keymanager.ErrTooLarge):
			t.Fatalf("a 200 reply gave an untyped error: %v", err)
		}
		if strings.Contains(err.Error(), "fuzz-token") {
			t.Fatal("the token is in an error")
		}
	})
}
