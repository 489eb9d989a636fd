package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

// Inserts is what an InsertRecorder serves: per validator (its cloud label
// value), when the first instance insert for its standby reached the fake.
type Inserts struct {
	Inserts map[string]time.Time `json:"inserts"`
	// InsertRequests counts every instance insert request, retries included.
	InsertRequests int `json:"insert_requests"`
	// InstancesCreated is the fake's own count of instances it created.
	InstancesCreated int `json:"instances_created"`
}

// InsertRecorder timestamps instance inserts as they arrive at a GCP wire
// fake, before the fake does anything with them: the moment failoverd's
// provision call reached the cloud. Measuring on the cloud's side is what
// makes it the alert-to-provision figure an operator cares about, whatever
// failoverd did (or thought it did) before.
type InsertRecorder struct {
	fake     *gcpfake.Server
	mu       sync.Mutex
	first    map[string]time.Time
	requests int
}

// NewInsertRecorder hooks every request of fake; it replaces any Hook set before.
func NewInsertRecorder(fake *gcpfake.Server) *InsertRecorder {
	r := &InsertRecorder{fake: fake, first: map[string]time.Time{}}
	fake.Hook(r.hook)
	return r
}

func (r *InsertRecorder) hook(req *http.Request) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/instances") {
		return
	}
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	// The fake reads the body after the hook: give it back unchanged.
	req.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return
	}
	var in struct {
		Labels map[string]string `json:"labels"`
	}
	if json.Unmarshal(body, &in) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if v := in.Labels[cloud.LabelValidator]; v != "" {
		if _, seen := r.first[v]; !seen {
			r.first[v] = at
		}
	}
}

// Snapshot is what the recorder has seen so far.
func (r *InsertRecorder) Snapshot() Inserts {
	created := r.fake.Created("instance")
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Inserts{Inserts: make(map[string]time.Time, len(r.first)), InsertRequests: r.requests, InstancesCreated: created}
	for k, v := range r.first {
		out.Inserts[k] = v
	}
	return out
}

// ServeHTTP answers GET with the Snapshot as JSON (bench/storm --cloud-inserts).
func (r *InsertRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.Snapshot())
}
