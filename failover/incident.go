// Package failover is the domain of failoverd: incidents, their lifecycle,
// the pure transition function, the store contract and the reconciling engine.
package failover

import (
	"time"
)

// State is where an incident is in its lifecycle (see DESIGN.md).
type State string

// The lifecycle states.
const (
	StateConfirming   State = "confirming"
	StateProvisioning State = "provisioning"
	StateSyncing      State = "syncing"
	StateReady        State = "ready"
	// StateMigrating: an approval was accepted and the signing right moved to
	// the standby; the keys are being imported there.
	StateMigrating State = "migrating"
	// StateMigrated: the standby signs. Only a person ends this (failback).
	StateMigrated State = "migrated"
	// StateFailingBack: a failback approval was accepted; the standby is
	// being fenced, then the signing right returns home.
	StateFailingBack State = "failing-back"
	StateRecovering  State = "recovering"
	StateClosed      State = "closed"
	StateFailed      State = "failed"
)

// States lists every state, in lifecycle order.
var States = []State{
	StateConfirming, StateProvisioning, StateSyncing, StateReady,
	StateMigrating, StateMigrated, StateFailingBack,
	StateRecovering, StateClosed, StateFailed,
}

// Open reports whether an incident in this state still claims its validator.
// A failed incident stays open: a person decides what happens next, and no
// second incident may start a second standby behind their back.
func (s State) Open() bool { return s != StateClosed && s != "" }

// Incident is one outage of one validator, from the first confirmed alert to
// the deletion of its standby.
type Incident struct {
	ID        string `json:"id"`
	Validator string `json:"validator"`
	Site      string `json:"site"`
	Chain     string `json:"chain,omitempty"`
	Network   string `json:"network,omitempty"`
	State     State  `json:"state"`
	// Reason says, in words for a person, why the incident is where it is or
	// what it is waiting for. Never empty on an open incident.
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// FiringSince is when the outage was first seen firing; the confirmFor
	// hold-down counts from here.
	FiringSince time.Time `json:"firingSince"`
	// ResolvedAt is when the alerts were last seen resolved, if they were.
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
	// KeepWarmUntil is when a recovering incident's standby gets deleted.
	KeepWarmUntil *time.Time `json:"keepWarmUntil,omitempty"`
	// TornDownBy names the person who ended the incident, if one did.
	TornDownBy string `json:"tornDownBy,omitempty"`
	// Standby is the cloud node this incident provisioned, once it exists or
	// is about to (Intent records the call before it is made).
	Standby *Standby `json:"standby,omitempty"`
	// PastStandbys are the billed spans of earlier standbys of this
	// incident (one lost and created again): the budget keeps their hours.
	PastStandbys []Span `json:"pastStandbys,omitempty"`
	// Intent is the external call the engine decided to make and may have
	// made: written before the call, cleared after its result is stored.
	Intent *Intent `json:"intent,omitempty"`
	// Migrations are the key moves of this incident (a migration, then
	// perhaps a failback), oldest first; the last one is current.
	Migrations []Migration `json:"migrations,omitempty"`
	// Nonces are the approval nonces this incident has accepted; an approval
	// is good for one use.
	Nonces []string `json:"nonces,omitempty"`
	// ZoneIndex is the placement zone the next create goes to; it moves on
	// when a zone has no capacity or quota.
	ZoneIndex int `json:"zoneIndex,omitempty"`
	// Attempts counts consecutive failures of the current step; the engine
	// backs off on it and gives up after a limit.
	Attempts      int       `json:"attempts,omitempty"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	History       []Entry   `json:"history"`
	// Version is the store's compare-and-swap token (bbolt: a counter;
	// Kubernetes: the resourceVersion). Opaque to everybody else.
	Version string `json:"version,omitempty"`
}

// Standby is what the incident knows of its cloud node.
type Standby struct {
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Zone     string `json:"zone,omitempty"`
	// State is the provider's word for the node (pending, running, ...), or
	// "deleted" once it is gone.
	State     string     `json:"state"`
	CreatedAt *time.Time `json:"createdAt,omitempty"`
	// RequestedAt is when failoverd asked for it: what the budget counts
	// from when the cloud's creation time was never read (a lost answer).
	RequestedAt *time.Time  `json:"requestedAt,omitempty"`
	DeletedAt   *time.Time  `json:"deletedAt,omitempty"`
	Sync        *SyncReport `json:"sync,omitempty"`
	// HourlyUSD is the estimated price per hour (machine and disk) when the
	// standby was requested; Hours and CostUSD are refreshed on every write.
	HourlyUSD float64 `json:"hourlyUSD,omitempty"`
	Hours     float64 `json:"hours,omitempty"`
	CostUSD   float64 `json:"costUSD,omitempty"`
}

// SyncReport is the last sync status read from the standby.
type SyncReport struct {
	ExecutionSynced bool   `json:"executionSynced"`
	ConsensusSynced bool   `json:"consensusSynced"`
	Optimistic      bool   `json:"optimistic"`
	ELOffline       bool   `json:"elOffline"`
	Health          int    `json:"health"`
	Peers           int    `json:"peers"`
	ExecutionPeers  int    `json:"executionPeers"`
	SyncDistance    uint64 `json:"syncDistance"`
	DiskFreeBytes   uint64 `json:"diskFreeBytes"`
	// ClockOffsetMillis is the standby's clock minus failoverd's.
	ClockOffsetMillis int64 `json:"clockOffsetMillis"`
	// NotReady lists the readiness conditions that did not hold.
	NotReady  []string  `json:"notReady,omitempty"`
	CheckedAt time.Time `json:"checkedAt"`
}

// Intent is an external call recorded before it is made, so that a crash
// between the call and the write of its result is repaired by repeating the
// same idempotent call rather than by guessing.
type Intent struct {
	Action string    `json:"action"`
	Target string    `json:"target"`
	At     time.Time `json:"at"`
}

// Entry is one line of an incident's history.
type Entry struct {
	At    time.Time `json:"at"`
	From  State     `json:"from,omitempty"`
	To    State     `json:"to,omitempty"`
	Event Event     `json:"event,omitempty"`
	Cause string    `json:"cause"`
}

// maxHistory bounds an incident's history; the first entries (how it began)
// and the newest are kept.
const maxHistory = 200

// record appends a history entry, trimming the middle when it grows too long.
func (inc *Incident) record(e Entry) {
	inc.History = append(inc.History, e)
	if len(inc.History) > maxHistory {
		const head = 20
		trimmed := make([]Entry, 0, maxHistory)
		trimmed = append(trimmed, inc.History[:head]...)
		trimmed = append(trimmed, Entry{At: e.At, Cause: "older history entries trimmed"})
		trimmed = append(trimmed, inc.History[len(inc.History)-(maxHistory-head-1):]...)
		inc.History = trimmed
	}
}

// Span is a time a standby existed (and was billed).
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}
