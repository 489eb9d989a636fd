// Package sim is the simulated cloud: the provider failoverd uses when no
// real cloud is configured (local runs, demos) and the test double for the
// engine. Its instances boot and sync on a model driven only by an injected
// clock, so tests are deterministic, and it can inject the failures real
// clouds produce: stockouts, errors before or after a call takes effect, slow
// boots, and instances reclaimed from under us.
//
// Like the real providers it treats instances without the managed-by=failoverd
// label as invisible and untouchable (see cloudtest for the contract).
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud"
)

// ProviderName is the name the simulated cloud goes by in config and incidents.
const ProviderName = "sim"

// DefaultZone is where Ensure creates a standby whose spec names no zone.
const DefaultZone = "sim-a"

// Defaults for the sync model.
const (
	DefaultPeers        = 25
	DefaultSyncDistance = 10_000
)

// Ops that Fail and FailAfter accept.
const (
	OpEnsure = "ensure"
	OpGet    = "get"
	OpList   = "list"
	OpDelete = "delete"
	OpSync   = "sync"
	// Snapshotter calls: SnapshotData, Snapshots, DeleteSnapshot.
	OpSnapshot       = "snapshot"
	OpSnapshots      = "snapshots"
	OpDeleteSnapshot = "delete-snapshot"
)

// Options configure the simulated cloud. The zero value is a cloud whose
// standbys are running and synced the moment they are created.
type Options struct {
	// Now is the clock; default time.Now. Every state the cloud reports is a
	// function of Now, so a fake clock makes tests deterministic.
	Now func() time.Time
	// BootTime is how long a standby stays pending after creation.
	BootTime time.Duration
	// SyncTime is how long a running standby takes to sync fully: the
	// execution client is synced at 60% of it, the consensus client at 100%.
	SyncTime time.Duration
	// Peers is how many peers a standby ramps up to over SyncTime; default 25.
	Peers int
	// SyncDistance is how many slots behind a standby starts when it begins
	// running; it shrinks linearly to 0 at SyncTime. Default 10000.
	SyncDistance uint64
	// SnapshotTime is how long a snapshot taken by SnapshotData stays not
	// Ready (default 0: ready at once).
	SnapshotTime time.Duration
	// NoCapacityZones are zones out of stock: creating a standby there fails
	// with cloud.ErrCapacity.
	NoCapacityZones []string
	// StatePath, if set, is a JSON file holding the instances, rewritten
	// atomically on every change and loaded by New, so a restarted failoverd
	// finds the standbys it made. One Cloud per file.
	StatePath string
	// Registerer, if set, gets the simulated cloud's metrics.
	Registerer prometheus.Registerer
}

// Cloud is the simulated cloud. It implements cloud.Provider and
// cloud.SyncReporter and is safe for concurrent use.
type Cloud struct {
	now          func() time.Time
	bootTime     time.Duration
	syncTime     time.Duration
	peers        int
	syncDistance uint64
	snapshotTime time.Duration
	statePath    string
	metrics      *metrics

	mu         sync.Mutex
	instances  map[string]*instance
	snapshots  map[string]*snapshot
	noCapacity map[string]bool
	slowBoot   map[string]time.Duration // for names not created yet
	failBefore map[string][]error
	failAfter  map[string][]error
	created    int
}

// instance is one simulated VM, as persisted in StatePath.
type instance struct {
	Name      string            `json:"name"`
	Zone      string            `json:"zone"`
	Labels    map[string]string `json:"labels"`
	CreatedAt time.Time         `json:"createdAt"`
	// BootExtra is added to Options.BootTime (SlowBoot).
	BootExtra   time.Duration `json:"bootExtra,omitempty"`
	Chain       string        `json:"chain,omitempty"`
	Network     string        `json:"network,omitempty"`
	MachineType string        `json:"machineType,omitempty"`
	DiskGB      int           `json:"diskGB,omitempty"`
}

func (in *instance) owned() bool { return in.Labels[cloud.LabelManagedBy] == cloud.ManagedByValue }

// stateFile is the on-disk format of StatePath.
type stateFile struct {
	Version   int         `json:"version"`
	Instances []*instance `json:"instances"`
	Snapshots []*snapshot `json:"snapshots,omitempty"`
}

const stateVersion = 1

type metrics struct {
	created prometheus.Counter
	deleted prometheus.Counter
	live    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_sim_instances_created_total",
			Help: "Standby instances the simulated cloud created.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_sim_instances_deleted_total",
			Help: "Standby instances the simulated cloud deleted on request.",
		}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "failoverd_sim_instances",
			Help: "Standby instances that currently exist in the simulated cloud.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.created, m.deleted, m.live} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("sim: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// New returns a simulated cloud, loading its instances from opts.StatePath
// when that file exists.
func New(opts Options) (*Cloud, error) {
	if opts.BootTime < 0 || opts.SyncTime < 0 || opts.SnapshotTime < 0 {
		return nil, fmt.Errorf("sim: BootTime, SyncTime and SnapshotTime must not be negative")
	}
	c := &Cloud{
		now:          opts.Now,
		bootTime:     opts.BootTime,
		syncTime:     opts.SyncTime,
		peers:        opts.Peers,
		syncDistance: opts.SyncDistance,
		snapshotTime: opts.SnapshotTime,
		statePath:    opts.StatePath,
		instances:    map[string]*instance{},
		snapshots:    map[string]*snapshot{},
		noCapacity:   map[string]bool{},
		slowBoot:     map[string]time.Duration{},
		failBefore:   map[string][]error{},
		failAfter:    map[string][]error{},
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.peers <= 0 {
		c.peers = DefaultPeers
	}
	if c.syncDistance == 0 {
		c.syncDistance = DefaultSyncDistance
	}
	for _, z := range opts.NoCapacityZones {
		c.noCapacity[z] = true
	}
	if c.statePath != "" {
		if err := c.load(); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	c.metrics.live.Set(float64(c.liveLocked()))
	return c, nil
}

// Name implements cloud.Provider.
func (c *Cloud) Name() string { return ProviderName }

// rfc1035 is what GCP accepts as an instance name; the sim is as strict, so a
// bad name fails here before it fails in a real cloud.
var rfc1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Ensure implements cloud.Provider.
func (c *Cloud) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Standby{}, fmt.Errorf("sim ensure %s: %w", spec.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpEnsure); err != nil {
		return cloud.Standby{}, err
	}
	s, err := c.ensureLocked(spec)
	if err != nil {
		return cloud.Standby{}, err
	}
	if err := c.injected(c.failAfter, OpEnsure); err != nil {
		return cloud.Standby{}, err
	}
	return s, nil
}

func (c *Cloud) ensureLocked(spec cloud.StandbySpec) (cloud.Standby, error) {
	if !rfc1035.MatchString(spec.Name) {
		return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: OpEnsure, Kind: cloud.ErrPermanent,
			Err: fmt.Errorf("invalid instance name %q", spec.Name)}
	}
	if in, ok := c.instances[spec.Name]; ok {
		if !in.owned() {
			// Adopting a VM we did not make would let failoverd delete an
			// operator's machine later; a person has to sort this out.
			return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: OpEnsure, Zone: in.Zone, Kind: cloud.ErrPermanent,
				Err: fmt.Errorf("instance %s exists and is not managed by failoverd", spec.Name)}
		}
		return c.standby(in), nil
	}
	zone := spec.Zone
	if zone == "" {
		zone = DefaultZone
	}
	if c.noCapacity[zone] {
		return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: OpEnsure, Zone: zone, Kind: cloud.ErrCapacity}
	}
	labels := cloud.OwnershipLabels(spec)
	// Like the real providers, the data disk starts from the newest ready
	// snapshot of the validator; the label says which (or none).
	labels[LabelSnapshot] = "none"
	if sn := c.newestReadyLocked(cloud.LabelValue(spec.Validator)); sn != nil {
		labels[LabelSnapshot] = cloud.LabelValue(sn.Name)
	}
	in := &instance{
		Name:        spec.Name,
		Zone:        zone,
		Labels:      labels,
		CreatedAt:   c.now(),
		BootExtra:   c.slowBoot[spec.Name],
		Chain:       spec.Chain,
		Network:     spec.Network,
		MachineType: spec.Placement.MachineType,
		DiskGB:      spec.Placement.DiskGB,
	}
	c.instances[in.Name] = in
	if err := c.save(); err != nil {
		delete(c.instances, in.Name)
		return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: OpEnsure, Zone: zone, Kind: cloud.ErrTransient, Err: err}
	}
	delete(c.slowBoot, in.Name)
	c.created++
	c.metrics.created.Inc()
	c.metrics.live.Set(float64(c.liveLocked()))
	return c.standby(in), nil
}

// Get implements cloud.Provider.
func (c *Cloud) Get(ctx context.Context, name string) (cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Standby{}, fmt.Errorf("sim get %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpGet); err != nil {
		return cloud.Standby{}, err
	}
	in, err := c.lookup(OpGet, name)
	if err != nil {
		return cloud.Standby{}, err
	}
	s := c.standby(in)
	if err := c.injected(c.failAfter, OpGet); err != nil {
		return cloud.Standby{}, err
	}
	return s, nil
}

// List implements cloud.Provider. Standbys come sorted by name.
func (c *Cloud) List(ctx context.Context) ([]cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim list: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpList); err != nil {
		return nil, err
	}
	var out []cloud.Standby
	for _, name := range slices.Sorted(maps.Keys(c.instances)) {
		if in := c.instances[name]; in.owned() {
			out = append(out, c.standby(in))
		}
	}
	if err := c.injected(c.failAfter, OpList); err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements cloud.Provider. The instance is gone at once: Get then
// returns ErrNotFound.
func (c *Cloud) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim delete %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpDelete); err != nil {
		return err
	}
	if in, ok := c.instances[name]; ok && in.owned() {
		delete(c.instances, name)
		if err := c.save(); err != nil {
			c.instances[name] = in
			return &cloud.Error{Provider: ProviderName, Op: OpDelete, Zone: in.Zone, Kind: cloud.ErrTransient, Err: err}
		}
		c.metrics.deleted.Inc()
		c.metrics.live.Set(float64(c.liveLocked()))
	}
	return c.injected(c.failAfter, OpDelete)
}

// SyncStatus implements cloud.SyncReporter. A pending standby reports the
// zero status; a running one follows the model described on Options.
func (c *Cloud) SyncStatus(ctx context.Context, s cloud.Standby) (cloud.SyncStatus, error) {
	if err := ctx.Err(); err != nil {
		return cloud.SyncStatus{}, fmt.Errorf("sim sync %s: %w", s.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpSync); err != nil {
		return cloud.SyncStatus{}, err
	}
	in, err := c.lookup(OpSync, s.Name)
	if err != nil {
		return cloud.SyncStatus{}, err
	}
	st := c.syncStatus(in, c.now())
	if err := c.injected(c.failAfter, OpSync); err != nil {
		return cloud.SyncStatus{}, err
	}
	return st, nil
}

func (c *Cloud) syncStatus(in *instance, now time.Time) cloud.SyncStatus {
	up := now.Sub(c.runningAt(in))
	if up < 0 {
		return cloud.SyncStatus{}
	}
	if up >= c.syncTime {
		return cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Health: 200,
			Peers: c.peers, ExecutionPeers: c.peers, DiskFreeBytes: simDiskFree}
	}
	// Exact integer arithmetic keeps the boundaries where the tests expect
	// them: distance reaches 0 and consensus syncs at exactly SyncTime.
	total, left := uint64(c.syncTime), uint64(c.syncTime-up)
	hi, lo := bits.Mul64(c.syncDistance, left)
	dist, rem := bits.Div64(hi, lo, total)
	if rem > 0 {
		dist++ // round up: never claim 0 slots behind before SyncTime
	}
	hi, lo = bits.Mul64(uint64(c.peers), uint64(up))
	peers, _ := bits.Div64(hi, lo, total)
	return cloud.SyncStatus{
		ExecutionSynced: up >= c.syncTime*6/10,
		ConsensusSynced: false,
		Health:          206, // the beacon API's "syncing"
		Peers:           int(peers),
		ExecutionPeers:  int(peers),
		SyncDistance:    dist,
		DiskFreeBytes:   simDiskFree,
	}
}

// simDiskFree is the free space a simulated node reports (1 TiB).
const simDiskFree = 1 << 40

func (c *Cloud) runningAt(in *instance) time.Time {
	return in.CreatedAt.Add(c.bootTime + in.BootExtra)
}

func (c *Cloud) lookup(op, name string) (*instance, error) {
	in, ok := c.instances[name]
	if !ok || !in.owned() {
		return nil, &cloud.Error{Provider: ProviderName, Op: op, Kind: cloud.ErrNotFound, Err: fmt.Errorf("instance %s", name)}
	}
	return in, nil
}

func (c *Cloud) standby(in *instance) cloud.Standby {
	state := cloud.StateRunning
	if c.now().Before(c.runningAt(in)) {
		state = cloud.StatePending
	}
	return cloud.Standby{
		Name:      in.Name,
		Provider:  ProviderName,
		Zone:      in.Zone,
		State:     state,
		Labels:    maps.Clone(in.Labels),
		CreatedAt: in.CreatedAt,
	}
}

func (c *Cloud) liveLocked() int {
	n := 0
	for _, in := range c.instances {
		if in.owned() {
			n++
		}
	}
	return n
}

// injected pops the next injected error for op, if any.
func (c *Cloud) injected(queue map[string][]error, op string) error {
	q := queue[op]
	if len(q) == 0 {
		return nil
	}
	err := q[0]
	if len(q) == 1 {
		delete(queue, op)
	} else {
		queue[op] = q[1:]
	}
	return fmt.Errorf("sim %s (injected): %w", op, err)
}

// Fail makes the next times calls of op ("ensure", "get", "list", "delete",
// "sync", "snapshot", "snapshots", "delete-snapshot") return err without taking effect. Calls queue up behind earlier
// ones for the same op. It panics on an unknown op, since a mistyped op would
// otherwise make a test silently pass.
func (c *Cloud) Fail(op string, err error, times int) {
	c.queueFailure(c.failBefore, op, err, times)
}

// FailAfter makes the next times calls of op take effect and then return
// err, as when a request reaches the cloud but its answer is lost: an Ensure
// creates the standby, a Delete deletes it, and the caller hears an error.
func (c *Cloud) FailAfter(op string, err error, times int) {
	c.queueFailure(c.failAfter, op, err, times)
}

func (c *Cloud) queueFailure(queue map[string][]error, op string, err error, times int) {
	switch op {
	case OpEnsure, OpGet, OpList, OpDelete, OpSync, OpSnapshot, OpSnapshots, OpDeleteSnapshot:
	default:
		panic(fmt.Sprintf("sim: unknown op %q", op))
	}
	if err == nil {
		panic("sim: injected error is nil")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for range times {
		queue[op] = append(queue[op], err)
	}
}

// SetNoCapacity marks zone as out of stock (on) or back in stock. Existing
// standbys in the zone are unaffected.
func (c *Cloud) SetNoCapacity(zone string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.noCapacity[zone] = true
	} else {
		delete(c.noCapacity, zone)
	}
}

// SlowBoot makes the standby name boot extra later than Options.BootTime.
// Call it before Ensure creates the standby, or while it is still pending; on
// a running standby it sends the standby back to pending.
func (c *Cloud) SlowBoot(name string, extra time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[name]
	if !ok {
		c.slowBoot[name] = extra
		return
	}
	old := in.BootExtra
	in.BootExtra = extra
	if err := c.save(); err != nil {
		// A test helper has no error to return; keeping memory and disk in
		// step matters more than the slow boot.
		in.BootExtra = old
	}
}

// Lose makes the instance vanish as if the cloud reclaimed it (a spot
// preemption, an operator deleting it by hand): Get then returns ErrNotFound.
// It does not count as a delete.
func (c *Cloud) Lose(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[name]
	if !ok {
		return
	}
	delete(c.instances, name)
	if err := c.save(); err != nil {
		c.instances[name] = in
		return
	}
	c.metrics.live.Set(float64(c.liveLocked()))
}

// AddUnowned plants an instance that failoverd did not make (no
// managed-by=failoverd label unless labels say so), as an operator's own VM.
// It does not count as created.
func (c *Cloud) AddUnowned(name, zone string, labels map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if zone == "" {
		zone = DefaultZone
	}
	c.instances[name] = &instance{Name: name, Zone: zone, Labels: maps.Clone(labels), CreatedAt: c.now()}
	if err := c.save(); err != nil {
		delete(c.instances, name)
	}
	c.metrics.live.Set(float64(c.liveLocked()))
}

// Created is how many standbys this Cloud has created since New.
func (c *Cloud) Created() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created
}

// Live is how many failoverd standbys exist now.
func (c *Cloud) Live() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liveLocked()
}

func (c *Cloud) load() error {
	b, err := os.ReadFile(c.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sim: load state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("sim: load state %s: %w", c.statePath, err)
	}
	if f.Version != stateVersion {
		return fmt.Errorf("sim: load state %s: version %d, want %d", c.statePath, f.Version, stateVersion)
	}
	for _, in := range f.Instances {
		if in == nil || in.Name == "" {
			return fmt.Errorf("sim: load state %s: instance without a name", c.statePath)
		}
		c.instances[in.Name] = in
	}
	for _, sn := range f.Snapshots {
		if sn == nil || sn.Name == "" {
			return fmt.Errorf("sim: load state %s: snapshot without a name", c.statePath)
		}
		c.snapshots[sn.Name] = sn
	}
	return nil
}

// save writes the instances to StatePath through a temporary file and a
// rename, so a crash leaves either the old state or the new one, never half.
func (c *Cloud) save() error {
	if c.statePath == "" {
		return nil
	}
	f := stateFile{Version: stateVersion, Instances: []*instance{}}
	for _, name := range slices.Sorted(maps.Keys(c.instances)) {
		f.Instances = append(f.Instances, c.instances[name])
	}
	for _, name := range slices.Sorted(maps.Keys(c.snapshots)) {
		f.Snapshots = append(f.Snapshots, c.snapshots[name])
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: save state: %w", err)
	}
	dir := filepath.Dir(c.statePath)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(c.statePath)+".*.tmp")
	if err != nil {
		return fmt.Errorf("sim: save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("sim: save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sim: save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sim: save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.statePath); err != nil {
		return fmt.Errorf("sim: save state: %w", err)
	}
	return nil
}
