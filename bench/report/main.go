// Command report turns the JSON results of bench/run.sh (bench/storm --out
// files, and optional pprof -top outputs) into docs/benchmarks.md, written
// to stdout; bench.WriteReport says what it contains.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/failoverd/failoverd/bench"
)

func main() {
	var o bench.ReportOptions
	sizes := flag.String("sizes", "1 10 100 1000", "fleet sizes, in order")
	notes := flag.String("notes", "", "a hand-written analysis to append (default RESULTS/../analysis.md when it exists)")
	flag.StringVar(&o.Results, "results", "bench/results", "directory of failoverd-N.json, baseline-N.json, peer-N.json, gcp-N.json")
	flag.StringVar(&o.Duration, "duration", "10s", "DURATION the run used")
	flag.StringVar(&o.Concurrency, "concurrency", "32", "CONCURRENCY the run used")
	flag.StringVar(&o.Repeats, "repeats", "50", "REPEATS the run used")
	flag.StringVar(&o.Peers, "peers", "2", "PEERS the run used")
	flag.StringVar(&o.HoldMax, "hold-max", "", "HOLD_MAX the run used")
	flag.StringVar(&o.GCPRate, "gcp-rate", "", "GCP_RATE the run used")
	flag.StringVar(&o.GCPDuration, "gcp-duration", "", "GCP_DURATION the run used")
	flag.StringVar(&o.Peer, "peer", "", "the peer receiver that ran: name, version and where it came from")
	flag.StringVar(&o.PeerSkipped, "peer-skipped", "", "why no peer ran")
	flag.StringVar(&o.ProfileSize, "profile-size", "", "fleet size of the profiled run (profile-cpu.txt, profile-block.txt), if any")
	flag.Parse()
	if err := run(o, *sizes, *notes); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(o bench.ReportOptions, sizes, notes string) error {
	for _, s := range strings.Fields(sizes) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("--sizes: %q is not a fleet size", s)
		}
		o.Sizes = append(o.Sizes, n)
	}
	if len(o.Sizes) == 0 {
		return fmt.Errorf("--sizes: no fleet sizes")
	}
	if notes == "" {
		notes = filepath.Join(o.Results, "..", "analysis.md")
	}
	// The page says when the runs happened, not when it was written.
	if st, err := os.Stat(filepath.Join(o.Results, fmt.Sprintf("failoverd-%d.json", o.Sizes[0]))); err == nil {
		o.Now = st.ModTime()
	}
	if b, err := os.ReadFile(notes); err == nil {
		o.Notes = string(b)
	} else if !os.IsNotExist(err) {
		return err
	}
	return bench.WriteReport(os.Stdout, o)
}
