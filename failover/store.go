package failover

import (
	"context"
	"errors"
	"time"
)

// Store errors, checked with errors.Is.
var (
	// ErrNotFound: no record with that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record changed since it was read (its Version differs),
	// or a create found the record already there. Re-read and try again.
	ErrConflict = errors.New("version conflict")
)

// Store keeps failoverd's state. Every write is a compare-and-swap on the
// record's Version: a write with a stale Version fails with ErrConflict and
// changes nothing; a write with an empty Version creates the record and fails
// with ErrConflict when it already exists. A successful write sets the new
// Version on the value passed in. A write that returns nil is durable.
//
// Two implementations: bbolt (the embedded default) and the Kubernetes API.
// Both pass failover/store/storetest.
type Store interface {
	GetIncident(ctx context.Context, id string) (Incident, error)
	// PutIncident creates (Version "") or updates an incident.
	PutIncident(ctx context.Context, inc *Incident) error
	// ListIncidents returns incidents ordered by CreatedAt, then ID.
	ListIncidents(ctx context.Context, opts ListOptions) ([]Incident, error)

	// GetValidator returns ErrNotFound when nothing was ever observed.
	GetValidator(ctx context.Context, name string) (ValidatorRecord, error)
	PutValidator(ctx context.Context, v *ValidatorRecord) error
	ListValidators(ctx context.Context) ([]ValidatorRecord, error)

	GetSite(ctx context.Context, name string) (SiteRecord, error)
	PutSite(ctx context.Context, s *SiteRecord) error
	ListSites(ctx context.Context) ([]SiteRecord, error)

	GetSnapshotRun(ctx context.Context, id string) (SnapshotRun, error)
	// PutSnapshotRun creates (Version "") or updates a snapshot-keeper run.
	PutSnapshotRun(ctx context.Context, r *SnapshotRun) error
	// ListSnapshotRuns returns runs ordered by CreatedAt, then ID; only the
	// validator's when validator is set.
	ListSnapshotRuns(ctx context.Context, validator string) ([]SnapshotRun, error)

	Close() error
}

// ListOptions filters ListIncidents.
type ListOptions struct {
	Validator string // only this validator's incidents, when set
	OpenOnly  bool   // only incidents whose state is Open()
}

// Match reports whether inc passes the filter; stores use it so that every
// implementation filters the same way.
func (o ListOptions) Match(inc Incident) bool {
	if o.Validator != "" && inc.Validator != o.Validator {
		return false
	}
	if o.OpenOnly && !inc.State.Open() {
		return false
	}
	return true
}

// ValidatorRecord is what failoverd has observed about one validator: its
// alert ledger and which incident, if any, currently owns it. It is the
// serialisation point for a validator: an incident is opened by a
// compare-and-swap here, so two replicas can never open two.
type ValidatorRecord struct {
	Name string `json:"name"`
	Site string `json:"site"`
	// Alerts is the ledger: the newest instance of each alert, by fingerprint.
	Alerts map[string]AlertRecord `json:"alerts,omitempty"`
	// OpenIncident is the ID of the validator's open incident, if any.
	OpenIncident string `json:"openIncident,omitempty"`
	// Seq numbers the validator's incidents; it only grows.
	Seq int `json:"seq"`
	// HandledThrough: firing alert instances that started at or before this
	// time belonged to an incident that is now closed; they do not open a new
	// one. A person who tears an incident down while its alert still fires is
	// not handed a fresh standby a second later.
	HandledThrough time.Time `json:"handledThrough,omitzero"`
	// Ownership is who may sign for this validator. It changes only by a
	// compare-and-swap of this record, when an approval is accepted.
	Ownership Ownership `json:"ownership,omitzero"`
	Version   string    `json:"version,omitempty"`
}

// SiteRecord is what failoverd knows of a site: its Watchdog heartbeat.
type SiteRecord struct {
	Name          string    `json:"name"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	// HeartbeatsSeen counts heartbeats that were stored (HA duplicates within
	// the resolution window are not).
	HeartbeatsSeen int64  `json:"heartbeatsSeen"`
	Version        string `json:"version,omitempty"`
}

// RunState is where a snapshot-keeper run is.
type RunState string

// The snapshot keeper's lifecycle: a keyless node boots (from the previous
// snapshot), syncs, stops its clients cleanly, its data disk is snapshotted,
// the node is deleted and old snapshots are pruned.
const (
	RunProvisioning RunState = "provisioning"
	RunSyncing      RunState = "syncing"
	RunStopping     RunState = "stopping"
	RunSnapshotting RunState = "snapshotting"
	RunCleanup      RunState = "cleanup"
	RunDone         RunState = "done"
	RunFailed       RunState = "failed"
	// RunAborted: a real outage of the validator began; the run gave way.
	RunAborted RunState = "aborted"
)

// Finished reports whether the run has ended.
func (s RunState) Finished() bool { return s == RunDone || s == RunFailed || s == RunAborted }

// SnapshotRun is one run of the snapshot keeper for one validator: an
// incident-like record with its own standby, history and cost.
type SnapshotRun struct {
	ID        string   `json:"id"`
	Validator string   `json:"validator"`
	Provider  string   `json:"provider"`
	State     RunState `json:"state"`
	Reason    string   `json:"reason"`
	// Standby is the keyless node the run syncs; it never holds keys.
	Standby *Standby `json:"standby,omitempty"`
	// Snapshot is the name of the snapshot this run makes.
	Snapshot      string     `json:"snapshot"`
	SnapshotReady bool       `json:"snapshotReady"`
	Pruned        []string   `json:"pruned,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	FinishedAt    *time.Time `json:"finishedAt,omitempty"`
	Attempts      int        `json:"attempts,omitempty"`
	NextAttemptAt time.Time  `json:"nextAttemptAt,omitzero"`
	History       []Entry    `json:"history"`
	Version       string     `json:"version,omitempty"`
}
