// Package cloud is the contract between failoverd and the clouds that host
// standby nodes: the Provider interface, what a standby is, and the typed
// errors every provider returns. cloud/sim is the simulated cloud (the local
// default); cloud/gcp and cloud/aws are the real ones; cloud/cloudtest is the
// conformance suite all of them pass.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Provider creates, finds and deletes standby nodes. Every method is
// idempotent by the standby's name, which is derived from the incident:
// Ensure twice makes one node, Delete of an absent node succeeds.
type Provider interface {
	// Name is the provider's name as written in config and incidents ("sim", "gcp", "aws").
	Name() string
	// Ensure makes sure a standby named spec.Name exists and returns it. If it
	// exists already (a retry, a restart), it is returned as it is.
	Ensure(ctx context.Context, spec StandbySpec) (Standby, error)
	// Get returns the standby, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) (Standby, error)
	// List returns every standby this failoverd owns (by ownership label).
	List(ctx context.Context) ([]Standby, error)
	// Delete removes the standby; an absent standby counts as deleted.
	Delete(ctx context.Context, name string) error
}

// Collector is a provider that can list and delete everything it owns
// (instances, disks, firewall rules, security groups), so that the garbage
// collector can remove what no incident claims.
type Collector interface {
	ListOwned(ctx context.Context) ([]Resource, error)
	DeleteOwned(ctx context.Context, r Resource) error
}

// Snapshotter is a provider that can keep warm chain-data snapshots.
type Snapshotter interface {
	// SnapshotData snapshots the data disk of the standby (the VM should be stopped or its clients stopped first; the keeper does that). Idempotent by snapshotName: a second call returns the existing snapshot. Labels are added to the ownership labels (managed-by=failoverd, failoverd-validator from the spec/standby, and failoverd-role=chain-data-snapshot).
	SnapshotData(ctx context.Context, standbyName, snapshotName string, labels map[string]string) (Snapshot, error)
	// Snapshots lists owned chain-data snapshots of one validator (cloud.LabelValue(validator)), newest first.
	Snapshots(ctx context.Context, validator string) ([]Snapshot, error)
	// DeleteSnapshot removes an owned snapshot; absent counts as deleted; unowned is never touched (ErrPermanent).
	DeleteSnapshot(ctx context.Context, name string) error
}

// Snapshot is one chain-data snapshot as a provider reports it.
type Snapshot struct {
	Provider, Name, ID, Location string
	Validator                    string
	SizeGB                       int
	Ready                        bool
	CreatedAt                    time.Time
	Labels                       map[string]string
}

// Resource is one owned cloud resource.
type Resource struct {
	Provider string
	Kind     string // instance, disk, firewall, security-group, volume
	Name     string
	ID       string // the provider's ID where names are not IDs (AWS)
	Zone     string
	Labels   map[string]string
	// CreatedAt is when the resource was made; the collector never deletes
	// a resource it cannot date.
	CreatedAt time.Time
}

// ClientStopper stops a standby's execution and consensus clients cleanly,
// so that its data disk can be snapshotted in a consistent state. The
// simulated cloud does it itself; real standbys do it through their agent.
type ClientStopper interface {
	// StopClients asks for the stop (idempotent) and reports whether the
	// clients have stopped; a clean stop of a synced node takes minutes, so
	// callers ask again until it says stopped.
	StopClients(ctx context.Context, s Standby) (stopped bool, err error)
}

// SyncReporter tells how far a standby's clients have synced. The simulated
// cloud reports its model; real standbys answer through the standby agent.
type SyncReporter interface {
	SyncStatus(ctx context.Context, s Standby) (SyncStatus, error)
}

// StandbySpec is what failoverd asks a provider to create.
type StandbySpec struct {
	// Name is the deterministic node name (see NameFor).
	Name       string
	IncidentID string
	Validator  string
	Site       string
	Chain      string
	Network    string
	Placement  Placement
	// Zone is where to create the standby if it does not exist yet. The
	// engine walks Placement.Zones in order on ErrCapacity/ErrQuota and
	// records each attempt; Ensure of an existing standby returns it wherever
	// it is.
	Zone string
	// Labels are extra labels/tags; providers add the ownership labels.
	Labels map[string]string
	// UserData is the bootstrap (cloud-init user-data / startup-script) the
	// node runs on first boot. Providers refuse one over their limit
	// (MaxUserData) with ErrPermanent rather than truncate it.
	UserData []byte
}

// Placement is where and on what a standby may run, in order of preference.
type Placement struct {
	Zones       []string `json:"zones,omitempty" mapstructure:"zones"`
	MachineType string   `json:"machineType,omitempty" mapstructure:"machineType"`
	DiskGB      int      `json:"diskGB,omitempty" mapstructure:"diskGB"`
	Spot        bool     `json:"spot,omitempty" mapstructure:"spot"`
}

// MaxUserData is each provider's limit on a bootstrap: GCP metadata values
// hold 256 KB, EC2 user-data 16 KB before base64.
var MaxUserData = map[string]int{"gcp": 256 << 10, "aws": 16 << 10}

// Standby states as providers report them.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateStopping   = "stopping"
	StateTerminated = "terminated"
	StateDeleted    = "deleted"
)

// Standby is a provider's view of one standby node.
type Standby struct {
	Name      string
	Provider  string
	Zone      string
	State     string
	Labels    map[string]string
	CreatedAt time.Time
	// Address is where the standby agent listens, when known.
	Address string
}

// SyncStatus is how far a standby has synced, as the standby agent (or the
// simulated cloud) reports it.
type SyncStatus struct {
	// ExecutionSynced: eth_syncing answered false.
	ExecutionSynced bool
	// ConsensusSynced: /eth/v1/node/syncing says is_syncing=false.
	ConsensusSynced bool
	// Optimistic: the beacon node follows a head its execution client has
	// not verified; such a node must not be called ready.
	Optimistic bool
	// ELOffline: the beacon node cannot reach its execution client.
	ELOffline bool
	// Health is the HTTP status of /eth/v1/node/health (200 ready, 206 syncing, 503 not initialised).
	Health int
	// Peers is the beacon node's connected peers; ExecutionPeers the execution client's.
	Peers          int
	ExecutionPeers int
	// SyncDistance is the beacon node's distance to the head, in slots.
	SyncDistance uint64
	// DiskFreeBytes on the chain-data disk (0: unknown).
	DiskFreeBytes uint64
	// ClockOffset is the standby's clock minus failoverd's.
	ClockOffset time.Duration
}

// MinPeers is the fewest peers each client needs to be called ready.
const MinPeers = 1

// MaxClockOffset is the largest clock difference a ready standby may have: a
// signer with a wrong clock misses its slots.
const MaxClockOffset = 500 * time.Millisecond

// NotReady lists, in words, every readiness condition that does not hold;
// empty means ready: both clients in sync, the beacon node healthy, not
// optimistic, its execution client online, at most one slot behind, peers on
// both sides, and the clock within MaxClockOffset.
func (s SyncStatus) NotReady() []string {
	var why []string
	if !s.ExecutionSynced {
		why = append(why, "execution client syncing")
	}
	if !s.ConsensusSynced {
		why = append(why, "beacon node syncing")
	}
	if s.Optimistic {
		why = append(why, "beacon node optimistic")
	}
	if s.ELOffline {
		why = append(why, "beacon node reports its execution client offline")
	}
	if s.SyncDistance > 1 {
		why = append(why, fmt.Sprintf("beacon node %d slots behind", s.SyncDistance))
	}
	if s.Health != 200 {
		why = append(why, fmt.Sprintf("beacon health %d", s.Health))
	}
	if s.Peers < MinPeers {
		why = append(why, fmt.Sprintf("beacon node has %d peers", s.Peers))
	}
	if s.ExecutionPeers < MinPeers {
		why = append(why, fmt.Sprintf("execution client has %d peers", s.ExecutionPeers))
	}
	if s.ClockOffset > MaxClockOffset || s.ClockOffset < -MaxClockOffset {
		why = append(why, fmt.Sprintf("clock off by %s", s.ClockOffset))
	}
	return why
}

// Ready reports whether the standby could take over signing.
func (s SyncStatus) Ready() bool { return len(s.NotReady()) == 0 }

// Ownership labels put on everything failoverd creates.
const (
	LabelManagedBy = "managed-by"
	ManagedByValue = "failoverd"
	LabelIncident  = "failoverd-incident"
	LabelValidator = "failoverd-validator"
	LabelSite      = "failoverd-site"
)

// OwnershipLabels are the labels that mark a standby as failoverd's.
func OwnershipLabels(spec StandbySpec) map[string]string {
	l := make(map[string]string, len(spec.Labels)+4)
	for k, v := range spec.Labels {
		l[k] = v
	}
	l[LabelManagedBy] = ManagedByValue
	l[LabelIncident] = LabelValue(spec.IncidentID)
	l[LabelValidator] = LabelValue(spec.Validator)
	l[LabelSite] = LabelValue(spec.Site)
	return l
}

var notNameChar = regexp.MustCompile(`[^a-z0-9-]+`)

// LabelValue makes s fit the strictest label value rules of the clouds (GCP:
// lowercase letters, digits, '-', '_', at most 63 characters).
func LabelValue(s string) string {
	s = notNameChar.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// NameFor derives the standby's node name from the incident ID. It is a valid
// GCP instance name (RFC 1035: lowercase, starts with a letter, at most 63
// characters), so the same incident always names the same node on every cloud.
func NameFor(incidentID string) string {
	s := "fo-" + strings.Trim(notNameChar.ReplaceAllString(strings.ToLower(incidentID), "-"), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.TrimRight(s, "-")
}

// Typed errors. Providers wrap them (fmt.Errorf("...: %w", cloud.ErrCapacity)
// or *Error); callers test with errors.Is.
var (
	// ErrNotFound: the standby does not exist.
	ErrNotFound = errors.New("standby not found")
	// ErrCapacity: the zone has no capacity for the machine type (a stockout);
	// another zone may.
	ErrCapacity = errors.New("no capacity")
	// ErrQuota: the account's quota is exhausted; another region or provider may do.
	ErrQuota = errors.New("quota exceeded")
	// ErrTransient: a failure that the same call may not meet again (throttling, 5xx, timeout).
	ErrTransient = errors.New("transient cloud error")
	// ErrPermanent: the same call will fail again (bad request, permission denied).
	ErrPermanent = errors.New("permanent cloud error")
)

// Error is a provider failure with where it happened.
type Error struct {
	Provider string
	Op       string
	Zone     string
	Kind     error // one of the sentinel errors above
	Err      error // the underlying cause, may be nil
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s", e.Provider, e.Op)
	if e.Zone != "" {
		msg += " in " + e.Zone
	}
	msg += ": " + e.Kind.Error()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Retryable reports whether the engine may try the same step again later.
// Capacity and quota are retryable (elsewhere, or later); permanent errors
// are not. An error of unknown kind counts as retryable, bounded by the
// engine's attempt limit.
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrPermanent)
}
