// Command storm replays a duplicate-heavy Alertmanager alert storm against a
// webhook receiver on this machine, shaped like two Alertmanager HA peers
// delivering the same groups, and reports throughput, acknowledgement latency
// and (optionally) the receiver's memory and the incidents it opened.
//
//	storm --target http://127.0.0.1:19097/webhook/alertmanager --token w \
//	      --validators 100 --duration 10s --pid 1234 \
//	      --api http://127.0.0.1:19097 --api-token a --out result.json
//
// The schedule: one group per validator (groupBy validator). Per validator
// the first delivery of the firing alert is new and the other peers×repeats-1
// deliveries are exact duplicates (the HA peer, repeat_interval re-sends,
// retries); every delivery is interleaved across validators and shuffled
// with a seeded RNG. Halfway through the run every validator's alert
// resolves: one more new observation per validator, then its duplicates.
// When a phase's schedule is exhausted its duplicate tail is replayed in a
// loop, so the run always lasts --duration. Only loopback targets are
// allowed: this is a load generator.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
)

type options struct {
	target      string
	token       string
	validators  int
	peers       int
	duration    time.Duration
	concurrency int
	repeats     int
	seed        uint64
	prefix      string
	api         string
	apiToken    string
	metrics     string
	holdResolve bool
	settle      time.Duration
	pid         int
	out         string
	label       string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
	printSummary(os.Stdout, res)
	if o.out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "storm:", err)
			os.Exit(1)
		}
	}
	if res.Incidents != nil && (res.Incidents.DuplicateIncidents > 0 || res.Incidents.Missing > 0) {
		os.Exit(3)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.StringVar(&o.target, "target", "", "webhook URL to post deliveries to (required; loopback only)")
	fs.StringVar(&o.token, "token", os.Getenv("STORM_TOKEN"), "bearer token for the webhook (default $STORM_TOKEN)")
	fs.IntVar(&o.validators, "validators", 10, "validators in the storm (one alert group each)")
	fs.IntVar(&o.peers, "peers", 2, "Alertmanager HA peers delivering every group")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent senders (and idle keep-alive connections)")
	fs.IntVar(&o.repeats, "repeats", 50, "deliveries of each group per peer and phase (repeat_interval re-sends and retries)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the schedule shuffle")
	fs.StringVar(&o.prefix, "prefix", "val-", "validator names are PREFIX1..PREFIXN (must match the receiver's fleet)")
	fs.StringVar(&o.api, "api", "", "failoverd base URL (e.g. http://127.0.0.1:19097): after the run, count incidents per validator via GET /v1/incidents")
	fs.StringVar(&o.apiToken, "api-token", os.Getenv("STORM_API_TOKEN"), "bearer token for --api (default $STORM_API_TOKEN)")
	fs.StringVar(&o.metrics, "metrics", "", "Prometheus /metrics URL of the receiver: after the run, read failoverd_sim_instances_created_total")
	fs.BoolVar(&o.holdResolve, "hold-resolve", false, "with --metrics: do not resolve (keep replaying firing duplicates) until the receiver reports one standby per validator, or until 90% of --duration")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "with --api/--metrics: after the run, wait up to this long for every validator to have an incident and a standby")
	fs.IntVar(&o.pid, "pid", 0, "receiver process id: sample /proc/PID/status VmRSS every 100ms")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.label, "label", "", "free-form name of the target, copied into the results (e.g. failoverd, baseline)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.target == "":
		return o, errors.New("--target URL is required")
	case o.validators < 1:
		return o, errors.New("--validators must be at least 1")
	case o.peers < 1:
		return o, errors.New("--peers must be at least 1")
	case o.repeats < 1:
		return o, errors.New("--repeats must be at least 1")
	case o.concurrency < 1:
		return o, errors.New("--concurrency must be at least 1")
	case o.duration <= 0:
		return o, errors.New("--duration must be positive")
	case o.holdResolve && o.metrics == "":
		return o, errors.New("--hold-resolve needs --metrics")
	}
	for _, u := range []struct{ flag, v string }{{"--target", o.target}, {"--api", o.api}, {"--metrics", o.metrics}} {
		if u.v == "" {
			continue
		}
		if err := checkLoopback(u.v); err != nil {
			return o, fmt.Errorf("%s: %w", u.flag, err)
		}
	}
	return o, nil
}

// checkLoopback refuses any URL whose host is not a loopback address: storm
// is a load generator and must not be pointed at somebody else's server.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: only http:// and https:// URLs", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing target host %q: storm only loads loopback addresses (127.0.0.0/8, ::1, localhost)", host)
	}
	return nil
}

// ---- payloads and schedule ----

const (
	phaseFiring   = 0
	phaseResolved = 1
)

// item is one scheduled delivery: validator v, from peer p, in phase ph.
type item struct {
	v, p  int32
	phase int8
	first bool // the first delivery of this validator in this phase
}

type schedule struct {
	payloads [][]byte // index (phase*N+v)*peers+p
	news     [2][]item
	dups     [2][]item
}

func (s *schedule) payload(o *options, it item) []byte {
	return s.payloads[(int(it.phase)*o.validators+int(it.v))*o.peers+int(it.p)]
}

func validatorName(prefix string, i int) string { return prefix + strconv.Itoa(i+1) }

func buildSchedule(o *options, start time.Time) (*schedule, error) {
	s := &schedule{payloads: make([][]byte, 2*o.validators*o.peers)}
	startsAt := start.UTC().Truncate(time.Millisecond)
	endsAt := startsAt.Add(o.duration / 2)
	for ph := range 2 {
		for v := range o.validators {
			name := validatorName(o.prefix, v)
			labels := map[string]string{
				"alertname": "ValidatorClientDown", "validator": name, "site": "basement",
				"failover": "true", "severity": "critical", "chain": "ethereum", "network": "hoodi",
			}
			a := alertmanager.Alert{
				Status: failover.AlertFiring, Labels: labels,
				Annotations: map[string]string{
					"summary":     "Validator client " + name + " is down",
					"runbook_url": "https://example.invalid/runbooks/ValidatorClientDown.md",
				},
				StartsAt:     startsAt,
				GeneratorURL: "http://prometheus:9090/graph",
				Fingerprint:  alertmanager.Fingerprint(labels),
			}
			status := "firing"
			if ph == phaseResolved {
				a.Status, a.EndsAt, status = failover.AlertResolved, endsAt, "resolved"
			}
			for p := range o.peers {
				msg := alertmanager.Message{
					Receiver: "failoverd", Status: status, Alerts: []alertmanager.Alert{a},
					GroupLabels:       map[string]string{"alertname": "ValidatorClientDown", "validator": name},
					CommonLabels:      labels,
					CommonAnnotations: a.Annotations,
					// The peers of an HA pair differ only in their own URL.
					ExternalURL: fmt.Sprintf("http://alertmanager-%d:9093", p),
					Version:     "4",
					GroupKey:    fmt.Sprintf("{}:{alertname=\"ValidatorClientDown\", validator=%q}", name),
				}
				b, err := json.Marshal(msg)
				if err != nil {
					return nil, err
				}
				s.payloads[(ph*o.validators+v)*o.peers+p] = b
			}
		}
	}
	rng := rand.New(rand.NewPCG(o.seed, 0x5707))
	for ph := range 2 {
		news := make([]item, 0, o.validators)
		dups := make([]item, 0, o.validators*(o.peers*o.repeats-1))
		for v := range o.validators {
			firstPeer := rng.IntN(o.peers)
			news = append(news, item{v: int32(v), p: int32(firstPeer), phase: int8(ph), first: true})
			for p := range o.peers {
				n := o.repeats
				if p == firstPeer {
					n--
				}
				for range n {
					dups = append(dups, item{v: int32(v), p: int32(p), phase: int8(ph)})
				}
			}
		}
		rng.Shuffle(len(news), func(i, j int) { news[i], news[j] = news[j], news[i] })
		rng.Shuffle(len(dups), func(i, j int) { dups[i], dups[j] = dups[j], dups[i] })
		s.news[ph], s.dups[ph] = news, dups
	}
	return s, nil
}

// ---- results ----

type Latency struct {
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

type RSS struct {
	Samples  int     `json:"samples"`
	PeakMiB  float64 `json:"peak_mib"`
	MeanMiB  float64 `json:"mean_mib"`
	VmHWMMiB float64 `json:"vmhwm_mib"`
	StartMiB float64 `json:"start_mib"`
}

type Incidents struct {
	Total              int            `json:"total"`
	PerValidator       map[string]int `json:"-"`
	WithOne            int            `json:"validators_with_one"`
	Missing            int            `json:"validators_without"`
	DuplicateIncidents int            `json:"duplicate_incidents"`
	States             map[string]int `json:"states"`
	Error              string         `json:"error,omitempty"`
}

type Result struct {
	Label            string         `json:"label,omitempty"`
	Target           string         `json:"target"`
	Validators       int            `json:"validators"`
	Peers            int            `json:"peers"`
	Repeats          int            `json:"repeats"`
	Concurrency      int            `json:"concurrency"`
	Seed             uint64         `json:"seed"`
	DurationSec      float64        `json:"duration_s"`
	ScheduleLen      int            `json:"schedule_len"`
	PayloadBytes     int            `json:"payload_bytes"`
	Requests         int            `json:"requests"`
	Errors           int            `json:"transport_errors"`
	RequestsPerSec   float64        `json:"requests_per_s"`
	Latency          Latency        `json:"latency"`
	Status           map[string]int `json:"status"`
	RepliesJSON      int            `json:"replies_with_counts"`
	New              int            `json:"new"`
	Duplicates       int            `json:"duplicates"`
	ExpectedNew      int            `json:"expected_new"`
	ResolvedAtSec    float64        `json:"resolved_at_s"`
	ScheduleLooped   [2]bool        `json:"schedule_looped"`
	RSS              *RSS           `json:"rss,omitempty"`
	Incidents        *Incidents     `json:"incidents,omitempty"`
	StandbysCreated  *float64       `json:"sim_instances_created,omitempty"`
	WebhookHistCount *float64       `json:"webhook_duration_count,omitempty"`
	WebhookHistSum   *float64       `json:"webhook_duration_sum_s,omitempty"`
	CPU              CPU            `json:"cpu"`
	FirstError       string         `json:"first_error,omitempty"`
}

// CPU is where the machine's processor time went during the run, in
// core-seconds: the receiver (--pid), this generator, and everything on the
// machine (so that other load is visible). Cores is the machine's count.
type CPU struct {
	Cores          int     `json:"cores"`
	ReceiverSec    float64 `json:"receiver_s,omitempty"`
	GeneratorSec   float64 `json:"generator_s"`
	MachineBusySec float64 `json:"machine_busy_s"`
	OtherSec       float64 `json:"other_s"`
	LoadAvgStart   string  `json:"loadavg_start"`
	LoadAvgEnd     string  `json:"loadavg_end"`
	// ReceiverUsPerReq is the receiver's CPU per request, in microseconds.
	ReceiverUsPerReq float64 `json:"receiver_us_per_req,omitempty"`
}

// ---- the run ----

type worker struct {
	lat       []time.Duration
	status    map[int]int
	errs      int
	firstErr  string
	news      int
	dups      int
	withCount int
}

type reply struct {
	New        *int `json:"new"`
	Duplicates *int `json:"duplicates"`
}

func run(ctx context.Context, o options) (*Result, error) {
	start := time.Now()
	sched, err := buildSchedule(&o, start)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.concurrency,
		MaxIdleConnsPerHost: o.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	var sampler *rssSampler
	if o.pid > 0 {
		sampler, err = startRSS(o.pid)
		if err != nil {
			return nil, err
		}
	}

	res := &Result{
		Label: o.label, Target: o.target, Validators: o.validators, Peers: o.peers, Repeats: o.repeats,
		Concurrency: o.concurrency, Seed: o.seed, Status: map[string]int{},
		ExpectedNew:  2 * o.validators,
		PayloadBytes: len(sched.payloads[0]),
	}
	for ph := range 2 {
		res.ScheduleLen += len(sched.news[ph]) + len(sched.dups[ph])
	}

	cpu0 := sampleCPU(o.pid)
	work := make(chan item, o.concurrency)
	var firstAcked [2]atomic.Int64
	workers := make([]*worker, o.concurrency)
	var wg sync.WaitGroup
	runStart := time.Now()
	deadline := runStart.Add(o.duration)
	for i := range workers {
		w := &worker{status: map[int]int{}, lat: make([]time.Duration, 0, 1<<14)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				body := sched.payload(&o, it)
				t0 := time.Now()
				code, rb, err := post(client, o.target, o.token, body)
				d := time.Since(t0)
				if err != nil {
					w.errs++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					continue
				}
				w.lat = append(w.lat, d)
				w.status[code]++
				if code == http.StatusOK {
					if it.first {
						firstAcked[it.phase].Add(1)
					}
					var r reply
					if json.Unmarshal(rb, &r) == nil && r.New != nil && r.Duplicates != nil {
						w.withCount++
						w.news += *r.New
						w.dups += *r.Duplicates
					}
				} else if w.firstErr == "" {
					w.firstErr = fmt.Sprintf("HTTP %d: %s", code, bytes.TrimSpace(rb))
				}
			}
		}()
	}

	// The dispatcher: phase 1 (firing) until halfway, then phase 2 (resolved).
	var standbysReady atomic.Bool
	if o.holdResolve {
		go func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if v, err := scrapeMetric(o.metrics, "failoverd_sim_instances_created_total"); err == nil && v >= float64(o.validators) {
					standbysReady.Store(true)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	half := runStart.Add(o.duration / 2)
	latestResolve := runStart.Add(o.duration * 9 / 10)
	resolvedAt := time.Time{}
	send := func(it item) bool {
		select {
		case work <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
dispatch:
	for ph := range 2 {
		list := slices.Concat(sched.news[ph], sched.dups[ph])
		i := 0
		for {
			now := time.Now()
			if !now.Before(deadline) || ctx.Err() != nil {
				break dispatch
			}
			if ph == phaseFiring && !now.Before(half) && firstAcked[phaseFiring].Load() >= int64(o.validators) &&
				(!o.holdResolve || standbysReady.Load() || !now.Before(latestResolve)) {
				break
			}
			if i == len(list) {
				// Schedule exhausted: replay the duplicate tail.
				res.ScheduleLooped[ph] = true
				i = len(sched.news[ph])
				if i == len(list) { // no duplicates at all (peers*repeats == 1)
					i = 0
				}
			}
			if !send(list[i]) {
				break dispatch
			}
			i++
		}
		if ph == phaseFiring {
			resolvedAt = time.Now()
		}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(runStart)
	res.CPU = sampleCPU(o.pid).since(cpu0)
	if !resolvedAt.IsZero() {
		res.ResolvedAtSec = resolvedAt.Sub(runStart).Seconds()
	}
	if sampler != nil {
		res.RSS = sampler.stop()
	}

	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		for c, n := range w.status {
			res.Status[strconv.Itoa(c)] += n
		}
		res.Errors += w.errs
		res.New += w.news
		res.Duplicates += w.dups
		res.RepliesJSON += w.withCount
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	res.Requests = len(all)
	res.DurationSec = elapsed.Seconds()
	res.RequestsPerSec = float64(res.Requests) / elapsed.Seconds()
	res.Latency = latencies(all)
	if res.Requests > 0 && res.CPU.ReceiverSec > 0 {
		res.CPU.ReceiverUsPerReq = res.CPU.ReceiverSec / float64(res.Requests) * 1e6
	}

	if o.api != "" || o.metrics != "" {
		settle(ctx, &o, res)
	}
	return res, nil
}

func post(c *http.Client, target, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.31.1")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, rb, nil
}

func latencies(all []time.Duration) Latency {
	if len(all) == 0 {
		return Latency{}
	}
	slices.Sort(all)
	at := func(q float64) float64 {
		i := int(q*float64(len(all))+0.999999) - 1 // nearest rank
		i = min(max(i, 0), len(all)-1)
		return ms(all[i])
	}
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	return Latency{P50Ms: at(0.50), P90Ms: at(0.90), P99Ms: at(0.99), MaxMs: ms(all[len(all)-1]),
		MeanMs: ms(sum / time.Duration(len(all)))}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// settle waits (up to --settle) for the receiver's engine to catch up, then
// counts incidents per validator and standbys created.
func settle(ctx context.Context, o *options, res *Result) {
	until := time.Now().Add(o.settle)
	for {
		done := true
		if o.api != "" {
			res.Incidents = countIncidents(o)
			done = res.Incidents.Error == "" && res.Incidents.Missing == 0
		}
		if o.metrics != "" {
			if v, err := scrapeMetric(o.metrics, "failoverd_sim_instances_created_total"); err == nil {
				res.StandbysCreated = &v
				done = done && v >= float64(o.validators)
			} else {
				done = false
			}
		}
		if done || !time.Now().Before(until) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if o.metrics != "" {
		if v, err := scrapeMetric(o.metrics, "failoverd_webhook_duration_seconds_count"); err == nil {
			res.WebhookHistCount = &v
		}
		if v, err := scrapeMetric(o.metrics, "failoverd_webhook_duration_seconds_sum"); err == nil {
			res.WebhookHistSum = &v
		}
	}
}

func countIncidents(o *options) *Incidents {
	inc := &Incidents{PerValidator: map[string]int{}, States: map[string]int{}}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(o.api, "/")+"/v1/incidents", nil)
	if err != nil {
		inc.Error = err.Error()
		return inc
	}
	if o.apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.apiToken)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		inc.Error = err.Error()
		return inc
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		inc.Error = fmt.Sprintf("GET /v1/incidents: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		return inc
	}
	var list struct {
		Incidents []struct {
			ID        string `json:"id"`
			Validator string `json:"validator"`
			State     string `json:"state"`
		} `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		inc.Error = "decode /v1/incidents: " + err.Error()
		return inc
	}
	for _, i := range list.Incidents {
		inc.PerValidator[i.Validator]++
		inc.States[i.State]++
	}
	inc.Total = len(list.Incidents)
	for v := range o.validators {
		switch n := inc.PerValidator[validatorName(o.prefix, v)]; {
		case n == 0:
			inc.Missing++
		case n == 1:
			inc.WithOne++
		default:
			inc.DuplicateIncidents += n - 1
		}
	}
	return inc
}

// scrapeMetric reads one unlabelled sample from a Prometheus text exposition.
func scrapeMetric(u, name string) (float64, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no sample %s", u, name)
}

// ---- memory of the receiver ----

type rssSampler struct {
	pid     int
	stopc   chan struct{}
	done    chan struct{}
	samples []float64
	start   float64
}

func readStatus(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseFloat(f[0], 64) // kB
		switch k {
		case "VmRSS":
			rss = n / 1024
		case "VmHWM":
			hwm = n / 1024
		}
	}
	return rss, hwm, nil
}

func startRSS(pid int) (*rssSampler, error) {
	rss, _, err := readStatus(pid)
	if err != nil {
		return nil, fmt.Errorf("--pid %d: %w", pid, err)
	}
	s := &rssSampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{}), start: rss}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := readStatus(pid); err == nil {
				s.samples = append(s.samples, rss)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

func (s *rssSampler) stop() *RSS {
	close(s.stopc)
	<-s.done
	r := &RSS{Samples: len(s.samples), StartMiB: s.start}
	var sum float64
	for _, v := range s.samples {
		sum += v
		r.PeakMiB = max(r.PeakMiB, v)
	}
	if len(s.samples) > 0 {
		r.MeanMiB = sum / float64(len(s.samples))
	}
	if _, hwm, err := readStatus(s.pid); err == nil {
		r.VmHWMMiB = hwm
	}
	return r
}

// ---- processor time ----

type cpuSample struct {
	receiver, self, busy float64
	load                 string
}

const clkTck = 100 // USER_HZ; 100 on every Linux architecture Go supports

func sampleCPU(pid int) cpuSample {
	var s cpuSample
	if pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// Fields after the ")" that ends the command name: utime is the 14th
			// field of the line, stime the 15th.
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 12 {
					u, _ := strconv.ParseFloat(f[11], 64)
					st, _ := strconv.ParseFloat(f[12], 64)
					s.receiver = (u + st) / clkTck
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i != 3 && i != 4 && i < 8 { // not idle, not iowait; no guest (counted in user)
				s.busy += n / clkTck
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			s.load = strings.Join(f[:3], " ")
		}
	}
	return s
}

func (s cpuSample) since(s0 cpuSample) CPU {
	c := CPU{
		Cores:          runtime.NumCPU(),
		ReceiverSec:    s.receiver - s0.receiver,
		GeneratorSec:   s.self - s0.self,
		MachineBusySec: s.busy - s0.busy,
		LoadAvgStart:   s0.load,
		LoadAvgEnd:     s.load,
	}
	c.OtherSec = max(c.MachineBusySec-c.ReceiverSec-c.GeneratorSec, 0)
	return c
}

// ---- output ----

func printSummary(w io.Writer, r *Result) {
	name := r.Target
	if r.Label != "" {
		name = r.Label + " (" + r.Target + ")"
	}
	fmt.Fprintf(w, "storm against %s\n", name)
	fmt.Fprintf(w, "  %d validators × %d peers × %d repeats × 2 phases = %d scheduled deliveries (%d-byte payloads), %d senders\n",
		r.Validators, r.Peers, r.Repeats, r.ScheduleLen, r.PayloadBytes, r.Concurrency)
	fmt.Fprintf(w, "  requests:     %d in %.2fs = %.0f req/s (transport errors: %d)\n", r.Requests, r.DurationSec, r.RequestsPerSec, r.Errors)
	fmt.Fprintf(w, "  ack latency:  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n",
		r.Latency.P50Ms, r.Latency.P90Ms, r.Latency.P99Ms, r.Latency.MaxMs, r.Latency.MeanMs)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s×%d", c, r.Status[c]))
	}
	fmt.Fprintf(w, "  status codes: %s\n", strings.Join(parts, " "))
	if r.ResolvedAtSec > 0 {
		fmt.Fprintf(w, "  resolved at:  %.2fs\n", r.ResolvedAtSec)
	} else {
		fmt.Fprintf(w, "  resolved at:  never (the run ended in the firing phase)\n")
	}
	if r.RepliesJSON > 0 {
		fmt.Fprintf(w, "  replies:      new %d (expected %d), duplicates %d\n", r.New, r.ExpectedNew, r.Duplicates)
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "  RSS:          peak %.1f MiB, mean %.1f MiB over %d samples, VmHWM %.1f MiB (start %.1f MiB)\n",
			r.RSS.PeakMiB, r.RSS.MeanMiB, r.RSS.Samples, r.RSS.VmHWMMiB, r.RSS.StartMiB)
	}
	c := r.CPU
	fmt.Fprintf(w, "  CPU:          receiver %.2fs (%.0fµs/req), generator %.2fs, other processes %.2fs, of %d cores × %.1fs; load %s -> %s\n",
		c.ReceiverSec, c.ReceiverUsPerReq, c.GeneratorSec, c.OtherSec, c.Cores, r.DurationSec, c.LoadAvgStart, c.LoadAvgEnd)
	if r.Incidents != nil {
		if r.Incidents.Error != "" {
			fmt.Fprintf(w, "  incidents:    could not count: %s\n", r.Incidents.Error)
		} else {
			fmt.Fprintf(w, "  incidents:    %d total; %d validators with exactly one, %d with none\n",
				r.Incidents.Total, r.Incidents.WithOne, r.Incidents.Missing)
			fmt.Fprintf(w, "  duplicate incidents: %d\n", r.Incidents.DuplicateIncidents)
		}
	}
	if r.StandbysCreated != nil {
		fmt.Fprintf(w, "  sim standbys created: %.0f (fleet %d)\n", *r.StandbysCreated, r.Validators)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error:  %s\n", r.FirstError)
	}
}
