// Package decodeonly is the receiver failoverd's webhook throughput is
// compared against: it reads the body (1 MiB limit), decodes it with
// alertmanager.Decode and answers 200 {} — no auth, no mapping, no store, no
// metrics. Whatever failoverd does beyond this costs the difference. It is
// its own small package so that bench/baseline links nothing else: its
// memory figure is the floor of a Go receiver that decodes the payload.
package decodeonly

import (
	"io"
	"net/http"

	"github.com/failoverd/failoverd/failover/alertmanager"
)

const maxBody = 1 << 20

// Handler answers POST (any path) and GET /readyz.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := alertmanager.Decode(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
}
