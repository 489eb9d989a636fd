package failover

import "fmt"

// Event is something that moves an incident from one state to another.
type Event string

// The events of the lifecycle. The engine derives them from stored
// observations, the cloud and people; Transition decides what they mean.
const (
	// EventConfirmed: the alerts kept firing for the whole confirmFor hold-down.
	EventConfirmed Event = "confirmed"
	// EventResolved: every alert of the validator is resolved.
	EventResolved Event = "resolved"
	// EventRefired: an alert fires again while the standby is kept warm.
	EventRefired Event = "refired"
	// EventProvisioned: the provider answered that the standby exists.
	EventProvisioned Event = "provisioned"
	// EventSynced: the standby reports execution and consensus in sync.
	EventSynced Event = "synced"
	// EventSyncLost: a ready standby fell behind.
	EventSyncLost Event = "sync-lost"
	// EventStandbyLost: the provider no longer has the standby.
	EventStandbyLost Event = "standby-lost"
	// EventStandbyDeleted: the standby is gone for good (deleted, or found absent).
	EventStandbyDeleted Event = "standby-deleted"
	// EventTeardown: a person ended the incident.
	EventTeardown Event = "teardown"
	// EventFail: a step failed in a way the engine must not retry on its own.
	EventFail Event = "fail"
	// EventApproved: a migration approval was verified, every precondition
	// held and the signing right moved to the standby.
	EventApproved Event = "approved"
	// EventImported: the standby imported every key and its validator client
	// runs (with doppelganger protection).
	EventImported Event = "imported"
	// EventFailbackApproved: a failback approval was verified; the standby
	// is to be fenced and the signing right to return home.
	EventFailbackApproved Event = "failback-approved"
)

// Events lists every event.
var Events = []Event{
	EventConfirmed, EventResolved, EventRefired, EventProvisioned, EventSynced,
	EventSyncLost, EventStandbyLost, EventStandbyDeleted, EventTeardown, EventFail,
	EventApproved, EventImported, EventFailbackApproved,
}

// transitions is the whole lifecycle. A pair that is absent is not allowed.
var transitions = map[State]map[Event]State{
	StateConfirming: {
		EventConfirmed: StateProvisioning,
		EventResolved:  StateClosed, // nothing was created: nothing to keep warm
		EventTeardown:  StateClosed,
		EventFail:      StateFailed,
	},
	StateProvisioning: {
		EventProvisioned: StateSyncing,
		EventResolved:    StateRecovering,
		EventTeardown:    StateRecovering,
		EventFail:        StateFailed,
	},
	StateSyncing: {
		EventSynced:      StateReady,
		EventStandbyLost: StateProvisioning,
		EventResolved:    StateRecovering,
		EventTeardown:    StateRecovering,
		EventFail:        StateFailed,
	},
	StateReady: {
		EventSyncLost:    StateSyncing,
		EventStandbyLost: StateProvisioning,
		EventResolved:    StateRecovering,
		EventTeardown:    StateRecovering,
		EventFail:        StateFailed,
		EventApproved:    StateMigrating,
	},
	// Once the signing right has moved, nothing but a person's failback moves
	// the incident on: a resolve, a teardown or a lost standby change nothing
	// by themselves (anything unexpected fails the incident and pages).
	StateMigrating: {
		EventImported: StateMigrated,
		EventFail:     StateFailed,
	},
	StateMigrated: {
		EventFailbackApproved: StateFailingBack,
		EventFail:             StateFailed,
	},
	StateFailingBack: {
		// The signing right is home again and the fenced standby is gone.
		EventStandbyDeleted: StateClosed,
		EventFail:           StateFailed,
	},
	StateRecovering: {
		// A flap: the standby may still be warm; provisioning re-ensures it,
		// which finds the existing node rather than making a second one.
		EventRefired:        StateProvisioning,
		EventStandbyDeleted: StateClosed,
		EventFail:           StateFailed,
	},
	StateFailed: {
		// Only a person moves a failed incident on: a teardown to clean up
		// (refused while the standby holds the signing right), or a failback.
		EventTeardown:         StateRecovering,
		EventFailbackApproved: StateFailingBack,
	},
	StateClosed: {},
}

// Transition is the pure lifecycle function: the state an incident in state s
// moves to on event e, or an error when the lifecycle does not allow it.
func Transition(s State, e Event) (State, error) {
	byEvent, ok := transitions[s]
	if !ok {
		return s, fmt.Errorf("unknown state %q", s)
	}
	next, ok := byEvent[e]
	if !ok {
		return s, &TransitionError{From: s, Event: e}
	}
	return next, nil
}

// TransitionError is a refused transition.
type TransitionError struct {
	From  State
	Event Event
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("event %q is not allowed in state %q", e.Event, e.From)
}
