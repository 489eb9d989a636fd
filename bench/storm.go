// Package bench measures failoverd's webhook and engine under an alert storm
// and writes docs/benchmarks.md. The commands under bench/ are thin mains
// around it: storm (the load generator, Run), report (WriteReport), gcpcloud
// (the GCP wire fake with an InsertRecorder) and inproc (StartServer with
// profiles); baseline serves bench/decodeonly. Keeping the logic in one importable
// package is what lets bench_test.go prove the tooling inside `make test`.
//
// The storm: one alert group per validator (groupBy validator). Per
// validator the first delivery of the firing alert is new and the other
// peers×repeats-1 deliveries are exact duplicates (the HA peer,
// repeat_interval re-sends, retries); every delivery is interleaved across
// validators and shuffled with a seeded RNG. Halfway through the run every
// validator's alert resolves: one more new observation per validator, then
// its duplicates. When a phase's schedule is exhausted its duplicate tail is
// replayed in a loop, so the run always lasts its duration. Only loopback
// targets are allowed: this is a load generator.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
)

// Options configure one storm run.
type Options struct {
	Target      string
	Token       string
	Validators  int
	Peers       int
	Duration    time.Duration
	Concurrency int
	Repeats     int
	Seed        uint64
	Prefix      string
	// Rate caps deliveries per second (0: as fast as the receiver answers).
	Rate float64
	// API is failoverd's base URL: after the run, count incidents per validator.
	API      string
	APIToken string
	// Metrics is the receiver's /metrics URL: standbys created (sim cloud).
	Metrics string
	// SimState is the simulated cloud's state file (DATA_DIR/sim-cloud.json):
	// each standby's creation time, for alert-to-provision latency.
	SimState string
	// CloudInserts is an InsertRecorder's URL (bench/gcpcloud): when each
	// validator's instance insert reached the GCP wire fake.
	CloudInserts string
	// HoldResolve keeps the firing phase going (past half of Duration) until
	// the receiver reports a standby per validator, for at most HoldMax from
	// the start; the resolve phase then lasts Duration/2.
	HoldResolve bool
	HoldMax     time.Duration
	// Settle bounds the wait after the run for every validator to have an
	// incident, a standby and a provision time.
	Settle time.Duration
	// PID of the receiver: RSS sampled every 100ms, CPU time measured.
	PID int
	// CloudPID is a cloud fake serving the receiver (bench/gcpcloud): its
	// CPU time is the benchmark's own, not other processes'.
	CloudPID int
	Label    string
}

// withDefaults fills what a zero Options leaves out.
func (o Options) withDefaults() Options {
	if o.Peers == 0 {
		o.Peers = 2
	}
	if o.Repeats == 0 {
		o.Repeats = 50
	}
	if o.Concurrency == 0 {
		o.Concurrency = 32
	}
	if o.Prefix == "" {
		o.Prefix = "val-"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.HoldMax == 0 {
		o.HoldMax = 3 * time.Minute
	}
	return o
}

// Validate reports the first option that cannot work.
func (o Options) Validate() error {
	switch {
	case o.Target == "":
		return errors.New("--target URL is required")
	case o.Validators < 1:
		return errors.New("--validators must be at least 1")
	case o.Peers < 1:
		return errors.New("--peers must be at least 1")
	case o.Repeats < 1:
		return errors.New("--repeats must be at least 1")
	case o.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case o.Duration <= 0:
		return errors.New("--duration must be positive")
	case o.Rate < 0:
		return errors.New("--rate must not be negative")
	case o.HoldResolve && o.Metrics == "" && o.CloudInserts == "":
		return errors.New("--hold-resolve needs --metrics or --cloud-inserts to see the standbys")
	case o.HoldResolve && o.HoldMax < o.Duration/2:
		return errors.New("--hold-max must be at least half of --duration")
	}
	for _, u := range []struct{ flag, v string }{{"--target", o.Target}, {"--api", o.API}, {"--metrics", o.Metrics}, {"--cloud-inserts", o.CloudInserts}} {
		if u.v == "" {
			continue
		}
		if err := CheckLoopback(u.v); err != nil {
			return fmt.Errorf("%s: %w", u.flag, err)
		}
	}
	return nil
}

// CheckLoopback refuses any URL whose host is not a loopback address: the
// storm is a load generator and must not be pointed at somebody else's server.
func CheckLoopback(raw string) error {
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

func (s *schedule) payload(o *Options, it item) []byte {
	return s.payloads[(int(it.phase)*o.Validators+int(it.v))*o.Peers+int(it.p)]
}

// ValidatorName is the storm's name for validator i (0-based): the
// receiver's fleet must use the same names.
func ValidatorName(prefix string, i int) string { return prefix + strconv.Itoa(i+1) }

func buildSchedule(o *Options, start time.Time) (*schedule, error) {
	s := &schedule{payloads: make([][]byte, 2*o.Validators*o.Peers)}
	startsAt := start.UTC().Truncate(time.Millisecond)
	endsAt := startsAt.Add(o.Duration / 2)
	for ph := range 2 {
		for v := range o.Validators {
			name := ValidatorName(o.Prefix, v)
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
			for p := range o.Peers {
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
				s.payloads[(ph*o.Validators+v)*o.Peers+p] = b
			}
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5707))
	for ph := range 2 {
		news := make([]item, 0, o.Validators)
		dups := make([]item, 0, o.Validators*(o.Peers*o.Repeats-1))
		for v := range o.Validators {
			firstPeer := rng.IntN(o.Peers)
			news = append(news, item{v: int32(v), p: int32(firstPeer), phase: int8(ph), first: true})
			for p := range o.Peers {
				n := o.Repeats
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

// Latency is a distribution, in milliseconds.
type Latency struct {
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	MinMs  float64 `json:"min_ms"`
}

// RSSPoint is one memory sample: seconds since the run started, MiB.
type RSSPoint struct {
	T   float64 `json:"t"`
	MiB float64 `json:"mib"`
}

// RSS is the receiver's resident memory over the run.
type RSS struct {
	Samples  int        `json:"samples"`
	PeakMiB  float64    `json:"peak_mib"`
	MeanMiB  float64    `json:"mean_mib"`
	VmHWMMiB float64    `json:"vmhwm_mib"`
	StartMiB float64    `json:"start_mib"`
	EndMiB   float64    `json:"end_mib"`
	Timeline []RSSPoint `json:"timeline,omitempty"`
}

// Incidents is what GET /v1/incidents showed after the run.
type Incidents struct {
	Total              int            `json:"total"`
	PerValidator       map[string]int `json:"-"`
	WithOne            int            `json:"validators_with_one"`
	Missing            int            `json:"validators_without"`
	DuplicateIncidents int            `json:"duplicate_incidents"`
	States             map[string]int `json:"states"`
	Error              string         `json:"error,omitempty"`
}

// Provision is alert-to-provision-call latency over validators: from the
// ack of the validator's first firing delivery to the cloud's record of its
// standby (the simulated cloud's creation time, or the moment the instance
// insert reached the GCP wire fake).
type Provision struct {
	Source string `json:"source"`
	// Validators with both a first ack and a provision time.
	Validators int `json:"validators"`
	// Missing: validators of the fleet without a provision time.
	Missing int     `json:"missing"`
	Latency Latency `json:"latency"`
	// AllSec: from the first firing ack of any validator to the last
	// validator's provision call: how long the whole fleet took.
	AllSec float64 `json:"all_s"`
	Error  string  `json:"error,omitempty"`
}

// Result is one storm run, as bench/storm writes it (--out) and the report reads it.
type Result struct {
	Label          string         `json:"label,omitempty"`
	Target         string         `json:"target"`
	Validators     int            `json:"validators"`
	Peers          int            `json:"peers"`
	Repeats        int            `json:"repeats"`
	Concurrency    int            `json:"concurrency"`
	Rate           float64        `json:"rate,omitempty"`
	Seed           uint64         `json:"seed"`
	DurationSec    float64        `json:"duration_s"`
	ScheduleLen    int            `json:"schedule_len"`
	PayloadBytes   int            `json:"payload_bytes"`
	Requests       int            `json:"requests"`
	Errors         int            `json:"transport_errors"`
	RequestsPerSec float64        `json:"requests_per_s"`
	Latency        Latency        `json:"latency"`
	Status         map[string]int `json:"status"`
	RepliesJSON    int            `json:"replies_with_counts"`
	New            int            `json:"new"`
	Duplicates     int            `json:"duplicates"`
	ExpectedNew    int            `json:"expected_new"`
	ResolvedAtSec  float64        `json:"resolved_at_s"`
	// HeldSec: how long past half of the duration the resolve was held
	// waiting for the standbys; HoldTimedOut: it gave up at HoldMax.
	HoldResolve      bool       `json:"hold_resolve,omitempty"`
	HeldSec          float64    `json:"held_s,omitempty"`
	HoldTimedOut     bool       `json:"hold_timed_out,omitempty"`
	ScheduleLooped   [2]bool    `json:"schedule_looped"`
	RSS              *RSS       `json:"rss,omitempty"`
	Incidents        *Incidents `json:"incidents,omitempty"`
	StandbysCreated  *float64   `json:"standbys_created,omitempty"`
	Provision        *Provision `json:"provision,omitempty"`
	WebhookHistCount *float64   `json:"webhook_duration_count,omitempty"`
	WebhookHistSum   *float64   `json:"webhook_duration_sum_s,omitempty"`
	CPU              CPU        `json:"cpu"`
	FirstError       string     `json:"first_error,omitempty"`
}

// CPU is where the machine's processor time went during the run, in
// core-seconds: the receiver (PID, with the children it waited for), this
// generator, and everything on the machine, so that other load is visible.
type CPU struct {
	Cores          int     `json:"cores"`
	ReceiverSec    float64 `json:"receiver_s,omitempty"`
	CloudSec       float64 `json:"cloud_fake_s,omitempty"`
	GeneratorSec   float64 `json:"generator_s"`
	MachineBusySec float64 `json:"machine_busy_s"`
	OtherSec       float64 `json:"other_s"`
	LoadAvgStart   string  `json:"loadavg_start"`
	LoadAvgEnd     string  `json:"loadavg_end"`
	// ReceiverUsPerReq is the receiver's CPU per request, in microseconds.
	ReceiverUsPerReq float64 `json:"receiver_us_per_req,omitempty"`
}

// OtherPct is the share of the machine's CPU (all cores) that went to
// neither the receiver nor the generator.
func (r *Result) OtherPct() float64 {
	total := float64(r.CPU.Cores) * r.DurationSec
	if total <= 0 {
		return 0
	}
	return 100 * r.CPU.OtherSec / total
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

// Run replays the storm and measures it. An error means the storm could not
// run; what the receiver did wrong is in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	sched, err := buildSchedule(&o, start)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Concurrency,
		MaxIdleConnsPerHost: o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	res := &Result{
		Label: o.Label, Target: o.Target, Validators: o.Validators, Peers: o.Peers, Repeats: o.Repeats,
		Concurrency: o.Concurrency, Rate: o.Rate, Seed: o.Seed, Status: map[string]int{}, HoldResolve: o.HoldResolve,
		ExpectedNew:  2 * o.Validators,
		PayloadBytes: len(sched.payloads[0]),
	}
	for ph := range 2 {
		res.ScheduleLen += len(sched.news[ph]) + len(sched.dups[ph])
	}

	runStart := time.Now()
	var sampler *rssSampler
	if o.PID > 0 {
		sampler, err = startRSS(o.PID, runStart)
		if err != nil {
			return nil, err
		}
	}
	cpu0 := sampleCPU(o.PID, o.CloudPID)
	work := make(chan item, o.Concurrency)
	var firstAcked [2]atomic.Int64
	// firstAck[v]: wall-clock nanoseconds of the earliest 200 to any firing
	// delivery of validator v, whichever peer's copy the receiver stored.
	firstAck := make([]atomic.Int64, o.Validators)
	workers := make([]*worker, o.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{status: map[int]int{}, lat: make([]time.Duration, 0, 1<<14)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				body := sched.payload(&o, it)
				t0 := time.Now()
				code, rb, err := post(client, o.Target, o.Token, body)
				t1 := time.Now()
				if err != nil {
					w.errs++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
				w.status[code]++
				if code == http.StatusOK {
					if it.first {
						firstAcked[it.phase].Add(1)
					}
					if it.phase == phaseFiring {
						storeMin(&firstAck[it.v], t1.UnixNano())
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

	half := runStart.Add(o.Duration / 2)
	deadline := runStart.Add(o.Duration)
	holdUntil := runStart.Add(max(o.HoldMax, o.Duration/2))
	var standbysReady atomic.Bool
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	if o.HoldResolve {
		go func() {
			for pollCtx.Err() == nil {
				if n, err := standbyCount(&o); err == nil && n >= o.Validators {
					standbysReady.Store(true)
					return
				}
				select {
				case <-pollCtx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	sent := 0
	send := func(it item) bool {
		if o.Rate > 0 {
			// Pace against the start, not the previous send, so a slow
			// reply does not lower the rate for the rest of the run.
			if d := time.Until(runStart.Add(time.Duration(float64(sent) / o.Rate * float64(time.Second)))); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return false
				}
			}
		}
		sent++
		select {
		case work <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	resolvedAt := time.Time{}
	end := deadline
dispatch:
	for ph := range 2 {
		list := slices.Concat(sched.news[ph], sched.dups[ph])
		i := 0
		for {
			now := time.Now()
			if ctx.Err() != nil || !now.Before(end) {
				break dispatch
			}
			if ph == phaseFiring {
				acked := firstAcked[phaseFiring].Load() >= int64(o.Validators)
				if o.HoldResolve {
					// Held: the firing phase may outlast the duration, up to
					// HoldMax; the resolve phase then gets its full half.
					end = holdUntil.Add(o.Duration / 2)
					ready := standbysReady.Load()
					if !now.Before(half) && acked && (ready || !now.Before(holdUntil)) {
						res.HoldTimedOut = !ready
						end = now.Add(o.Duration / 2)
						break
					}
					if !now.Before(holdUntil) && !acked {
						res.HoldTimedOut = true
						break dispatch
					}
				} else if !now.Before(half) && acked {
					break
				}
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
	stopPoll()
	elapsed := time.Since(runStart)
	res.CPU = sampleCPU(o.PID, o.CloudPID).since(cpu0)
	if !resolvedAt.IsZero() {
		res.ResolvedAtSec = resolvedAt.Sub(runStart).Seconds()
		if o.HoldResolve {
			res.HeldSec = max(resolvedAt.Sub(half).Seconds(), 0)
		}
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

	if o.API != "" || o.Metrics != "" || o.SimState != "" || o.CloudInserts != "" {
		acks := make([]int64, o.Validators)
		for v := range acks {
			acks[v] = firstAck[v].Load()
		}
		settle(ctx, &o, res, acks)
	}
	return res, nil
}

// storeMin lowers a to v unless it already holds something smaller (0: unset).
func storeMin(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old != 0 && old <= v {
			return
		}
		if a.CompareAndSwap(old, v) {
			return
		}
	}
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
		MeanMs: ms(sum / time.Duration(len(all))), MinMs: ms(all[0])}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// standbyCount is how many standbys the receiver reports: validators with
// an instance insert at the GCP fake, or the simulated cloud's counter.
func standbyCount(o *Options) (int, error) {
	if o.CloudInserts != "" {
		ins, err := fetchInserts(o.CloudInserts)
		if err != nil {
			return 0, err
		}
		return len(ins.Inserts), nil
	}
	v, err := scrapeMetric(o.Metrics, "failoverd_sim_instances_created_total")
	return int(v), err
}

// settle waits (up to Settle) for the receiver's engine to catch up, then
// counts incidents per validator, standbys created and provision times.
func settle(ctx context.Context, o *Options, res *Result, acks []int64) {
	until := time.Now().Add(o.Settle)
	for {
		done := true
		if o.API != "" {
			res.Incidents = countIncidents(o)
			done = res.Incidents.Error == "" && res.Incidents.Missing == 0
		}
		switch {
		case o.CloudInserts != "":
			if ins, err := fetchInserts(o.CloudInserts); err == nil {
				v := float64(ins.InstancesCreated)
				res.StandbysCreated = &v
				done = done && ins.InstancesCreated >= o.Validators
			} else {
				done = false
			}
		case o.Metrics != "":
			if v, err := scrapeMetric(o.Metrics, "failoverd_sim_instances_created_total"); err == nil {
				res.StandbysCreated = &v
				done = done && v >= float64(o.Validators)
			} else {
				done = false
			}
		}
		if o.SimState != "" || o.CloudInserts != "" {
			res.Provision = provisionLatency(o, acks)
			done = done && res.Provision.Error == "" && res.Provision.Missing == 0
		}
		if done || !time.Now().Before(until) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if o.Metrics != "" {
		if v, err := scrapeMetric(o.Metrics, "failoverd_webhook_duration_seconds_count"); err == nil {
			res.WebhookHistCount = &v
		}
		if v, err := scrapeMetric(o.Metrics, "failoverd_webhook_duration_seconds_sum"); err == nil {
			res.WebhookHistSum = &v
		}
	}
}

// provisionLatency joins each validator's first firing ack with its
// standby's provision time.
func provisionLatency(o *Options, acks []int64) *Provision {
	p := &Provision{}
	var times map[string]time.Time
	var err error
	if o.CloudInserts != "" {
		p.Source = "gcp instance insert"
		var ins *Inserts
		if ins, err = fetchInserts(o.CloudInserts); err == nil {
			times = ins.Inserts
		}
	} else {
		p.Source = "sim createdAt"
		times, err = simCreated(o.SimState)
	}
	if err != nil {
		p.Error = err.Error()
		return p
	}
	var lat []time.Duration
	var firstAck int64
	var last time.Time
	for v, ack := range acks {
		at, ok := times[cloud.LabelValue(ValidatorName(o.Prefix, v))]
		if !ok {
			p.Missing++
			continue
		}
		if ack == 0 {
			continue // never acknowledged: nothing to measure from
		}
		lat = append(lat, at.Sub(time.Unix(0, ack)))
		if firstAck == 0 || ack < firstAck {
			firstAck = ack
		}
		if at.After(last) {
			last = at
		}
	}
	p.Validators = len(lat)
	p.Latency = latencies(lat)
	if firstAck != 0 {
		p.AllSec = last.Sub(time.Unix(0, firstAck)).Seconds()
	}
	return p
}

// simCreated reads when the simulated cloud created each validator's
// standby (the earliest, should there be several) from its state file.
func simCreated(path string) (map[string]time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st struct {
		Instances []struct {
			Labels    map[string]string `json:"labels"`
			CreatedAt time.Time         `json:"createdAt"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]time.Time{}
	for _, in := range st.Instances {
		v := in.Labels[cloud.LabelValidator]
		if v == "" {
			continue
		}
		if old, ok := out[v]; !ok || in.CreatedAt.Before(old) {
			out[v] = in.CreatedAt
		}
	}
	return out, nil
}

func fetchInserts(u string) (*Inserts, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	ins := new(Inserts)
	if err := json.NewDecoder(resp.Body).Decode(ins); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return ins, nil
}

func countIncidents(o *Options) *Incidents {
	inc := &Incidents{PerValidator: map[string]int{}, States: map[string]int{}}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(o.API, "/")+"/v1/incidents", nil)
	if err != nil {
		inc.Error = err.Error()
		return inc
	}
	if o.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIToken)
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
	for v := range o.Validators {
		switch n := inc.PerValidator[ValidatorName(o.Prefix, v)]; {
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
	t0      time.Time
	stopc   chan struct{}
	done    chan struct{}
	samples []RSSPoint
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

func startRSS(pid int, t0 time.Time) (*rssSampler, error) {
	rss, _, err := readStatus(pid)
	if err != nil {
		return nil, fmt.Errorf("--pid %d: %w", pid, err)
	}
	s := &rssSampler{pid: pid, t0: t0, stopc: make(chan struct{}), done: make(chan struct{}), start: rss}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := readStatus(pid); err == nil {
				s.samples = append(s.samples, RSSPoint{T: time.Since(s.t0).Seconds(), MiB: rss})
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
	r := &RSS{Samples: len(s.samples), StartMiB: s.start, Timeline: s.samples}
	var sum float64
	for _, p := range s.samples {
		sum += p.MiB
		r.PeakMiB = max(r.PeakMiB, p.MiB)
	}
	if len(s.samples) > 0 {
		r.MeanMiB = sum / float64(len(s.samples))
		r.EndMiB = s.samples[len(s.samples)-1].MiB
	}
	if _, hwm, err := readStatus(s.pid); err == nil {
		r.VmHWMMiB = hwm
	}
	return r
}

// ---- processor time ----

type cpuSample struct {
	receiver, cloud, self, busy float64
	load                        string
}

const clkTck = 100 // USER_HZ; 100 on every Linux architecture Go supports

// procCPU is a process's processor time in seconds, with the children it
// waited for: a receiver that runs a command per delivery (bench/peer)
// spends its work there.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: utime, stime,
	// cutime, cstime are the 14th–17th fields of the line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) <= 14 {
		return 0
	}
	var sum float64
	for _, k := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseFloat(f[k], 64)
		sum += n / clkTck
	}
	return sum
}

func sampleCPU(pid, cloudPID int) cpuSample {
	s := cpuSample{receiver: procCPU(pid), cloud: procCPU(cloudPID)}
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
		CloudSec:       s.cloud - s0.cloud,
		GeneratorSec:   s.self - s0.self,
		MachineBusySec: s.busy - s0.busy,
		LoadAvgStart:   s0.load,
		LoadAvgEnd:     s.load,
	}
	c.OtherSec = max(c.MachineBusySec-c.ReceiverSec-c.CloudSec-c.GeneratorSec, 0)
	return c
}

// ---- output ----

// PrintSummary writes a human summary of one run.
func PrintSummary(w io.Writer, r *Result) {
	name := r.Target
	if r.Label != "" {
		name = r.Label + " (" + r.Target + ")"
	}
	fmt.Fprintf(w, "storm against %s\n", name)
	fmt.Fprintf(w, "  %d validators × %d peers × %d repeats × 2 phases = %d scheduled deliveries (%d-byte payloads), %d senders",
		r.Validators, r.Peers, r.Repeats, r.ScheduleLen, r.PayloadBytes, r.Concurrency)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", at most %.0f req/s", r.Rate)
	}
	fmt.Fprintln(w)
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
	switch {
	case r.ResolvedAtSec > 0 && r.HoldTimedOut:
		fmt.Fprintf(w, "  resolved at:  %.2fs (held %.2fs, gave up waiting for the standbys)\n", r.ResolvedAtSec, r.HeldSec)
	case r.ResolvedAtSec > 0 && r.HoldResolve:
		fmt.Fprintf(w, "  resolved at:  %.2fs (held %.2fs for the standbys)\n", r.ResolvedAtSec, r.HeldSec)
	case r.ResolvedAtSec > 0:
		fmt.Fprintf(w, "  resolved at:  %.2fs\n", r.ResolvedAtSec)
	default:
		fmt.Fprintf(w, "  resolved at:  never (the run ended in the firing phase)\n")
	}
	if r.RepliesJSON > 0 {
		fmt.Fprintf(w, "  replies:      new %d (expected %d), duplicates %d\n", r.New, r.ExpectedNew, r.Duplicates)
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "  RSS:          peak %.1f MiB, mean %.1f MiB over %d samples, VmHWM %.1f MiB (start %.1f, end %.1f MiB)\n",
			r.RSS.PeakMiB, r.RSS.MeanMiB, r.RSS.Samples, r.RSS.VmHWMMiB, r.RSS.StartMiB, r.RSS.EndMiB)
	}
	c := r.CPU
	fmt.Fprintf(w, "  CPU:          receiver %.2fs (%.0fµs/req), cloud fake %.2fs, generator %.2fs, other processes %.2fs, of %d cores × %.1fs; load %s -> %s\n",
		c.ReceiverSec, c.ReceiverUsPerReq, c.CloudSec, c.GeneratorSec, c.OtherSec, c.Cores, r.DurationSec, c.LoadAvgStart, c.LoadAvgEnd)
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
		fmt.Fprintf(w, "  standbys created: %.0f (fleet %d)\n", *r.StandbysCreated, r.Validators)
	}
	if p := r.Provision; p != nil {
		if p.Error != "" {
			fmt.Fprintf(w, "  alert→provision: could not read (%s): %s\n", p.Source, p.Error)
		} else {
			fmt.Fprintf(w, "  alert→provision (%s): p50 %.1fms p99 %.1fms max %.1fms over %d validators (%d without); all %d within %.2fs of the first ack\n",
				p.Source, p.Latency.P50Ms, p.Latency.P99Ms, p.Latency.MaxMs, p.Validators, p.Missing, p.Validators, p.AllSec)
		}
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error:  %s\n", r.FirstError)
	}
}

// Failed reports what a run against failoverd got wrong, if anything: a
// validator with two incidents or none, or fewer standbys than validators.
func (r *Result) Failed() []string {
	var out []string
	if r.Incidents != nil {
		if r.Incidents.Error != "" {
			out = append(out, "incidents not counted: "+r.Incidents.Error)
		} else {
			if r.Incidents.DuplicateIncidents > 0 {
				out = append(out, fmt.Sprintf("%d duplicate incidents", r.Incidents.DuplicateIncidents))
			}
			if r.Incidents.Missing > 0 {
				out = append(out, fmt.Sprintf("%d validators without an incident", r.Incidents.Missing))
			}
		}
	}
	if r.StandbysCreated != nil && int(*r.StandbysCreated) != r.Validators {
		out = append(out, fmt.Sprintf("%.0f standbys created for %d validators", *r.StandbysCreated, r.Validators))
	}
	if r.Provision != nil && (r.Provision.Error != "" || r.Provision.Missing > 0) {
		out = append(out, fmt.Sprintf("provision times missing for %d validators %s", r.Provision.Missing, r.Provision.Error))
	}
	return out
}
