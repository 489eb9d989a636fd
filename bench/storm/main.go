// Command storm replays a duplicate-heavy Alertmanager alert storm against a
// webhook receiver on this machine, shaped like two Alertmanager HA peers
// delivering the same groups, and reports throughput, acknowledgement
// latency, the receiver's memory over the run and (against failoverd) the
// incidents it opened, the standbys it created and how long after the alert
// each provision call reached the cloud. The storm itself is described in
// package bench.
//
//	storm --target http://127.0.0.1:19097/webhook/alertmanager --token w \
//	      --validators 100 --duration 10s --pid 1234 \
//	      --api http://127.0.0.1:19097 --api-token a \
//	      --metrics http://127.0.0.1:19097/metrics --hold-resolve \
//	      --sim-state DATA_DIR/sim-cloud.json --out result.json
//
// Exit status: 0 when the run completed, 1 when it could not run, 3 when
// failoverd got something wrong (a validator with two incidents or none,
// fewer standbys than validators, a standby without a provision time).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/failoverd/failoverd/bench"
)

func main() {
	o, out, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
	bench.PrintSummary(os.Stdout, res)
	if out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "storm:", err)
			os.Exit(1)
		}
	}
	if f := res.Failed(); len(f) > 0 {
		fmt.Fprintln(os.Stderr, "storm: the receiver got it wrong:", strings.Join(f, "; "))
		os.Exit(3)
	}
}

func parseFlags(args []string) (bench.Options, string, error) {
	var o bench.Options
	var out string
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.StringVar(&o.Target, "target", "", "webhook URL to post deliveries to (required; loopback only)")
	fs.StringVar(&o.Token, "token", os.Getenv("STORM_TOKEN"), "bearer token for the webhook (default $STORM_TOKEN)")
	fs.IntVar(&o.Validators, "validators", 10, "validators in the storm (one alert group each)")
	fs.IntVar(&o.Peers, "peers", 2, "Alertmanager HA peers delivering every group")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to run (--hold-resolve may add to the firing half)")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "concurrent senders (and idle keep-alive connections)")
	fs.IntVar(&o.Repeats, "repeats", 50, "deliveries of each group per peer and phase (repeat_interval re-sends and retries)")
	fs.Float64Var(&o.Rate, "rate", 0, "at most this many deliveries per second (0: as fast as the receiver answers)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the schedule shuffle")
	fs.StringVar(&o.Prefix, "prefix", "val-", "validator names are PREFIX1..PREFIXN (must match the receiver's fleet)")
	fs.StringVar(&o.API, "api", "", "failoverd base URL (e.g. http://127.0.0.1:19097): after the run, count incidents per validator via GET /v1/incidents")
	fs.StringVar(&o.APIToken, "api-token", os.Getenv("STORM_API_TOKEN"), "bearer token for --api (default $STORM_API_TOKEN)")
	fs.StringVar(&o.Metrics, "metrics", "", "the receiver's Prometheus /metrics URL: read failoverd_sim_instances_created_total")
	fs.StringVar(&o.SimState, "sim-state", "", "failoverd's simulated cloud state file (DATA_DIR/sim-cloud.json): alert-to-provision latency from each standby's createdAt")
	fs.StringVar(&o.CloudInserts, "cloud-inserts", "", "URL of bench/gcpcloud's recorder: alert-to-provision latency from each instance insert's arrival at the GCP wire fake")
	fs.BoolVar(&o.HoldResolve, "hold-resolve", false, "with --metrics or --cloud-inserts: keep the alerts firing until there is a standby per validator (at most --hold-max), then resolve for half of --duration")
	fs.DurationVar(&o.HoldMax, "hold-max", 3*time.Minute, "with --hold-resolve: resolve anyway this long after the start")
	fs.DurationVar(&o.Settle, "settle", 10*time.Second, "after the run, wait up to this long for every validator to have an incident, a standby and a provision time")
	fs.IntVar(&o.PID, "pid", 0, "receiver process id: sample /proc/PID/status VmRSS every 100ms and measure its CPU time")
	fs.IntVar(&o.CloudPID, "cloud-pid", 0, "process id of the cloud fake the receiver uses (bench/gcpcloud): its CPU time is counted apart from other processes'")
	fs.StringVar(&out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.Label, "label", "", "free-form name of the target, copied into the results (e.g. failoverd, baseline)")
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if fs.NArg() > 0 {
		return o, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Seed == 0 {
		return o, "", errors.New("--seed must not be 0")
	}
	return o, out, o.Validate()
}
