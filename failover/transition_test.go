package failover

import (
	"errors"
	"testing"
)

// TestTransitionEveryStateAndEvent checks the whole state × event table: the
// allowed moves are listed here a second time, independently of the
// implementation, and every pair not listed must be refused.
func TestTransitionEveryStateAndEvent(t *testing.T) {
	type pair struct {
		s State
		e Event
	}
	allowed := map[pair]State{
		{StateConfirming, EventConfirmed}: StateProvisioning,
		{StateConfirming, EventResolved}:  StateClosed,
		{StateConfirming, EventTeardown}:  StateClosed,
		{StateConfirming, EventFail}:      StateFailed,

		{StateProvisioning, EventProvisioned}: StateSyncing,
		{StateProvisioning, EventResolved}:    StateRecovering,
		{StateProvisioning, EventTeardown}:    StateRecovering,
		{StateProvisioning, EventFail}:        StateFailed,

		{StateSyncing, EventSynced}:      StateReady,
		{StateSyncing, EventStandbyLost}: StateProvisioning,
		{StateSyncing, EventResolved}:    StateRecovering,
		{StateSyncing, EventTeardown}:    StateRecovering,
		{StateSyncing, EventFail}:        StateFailed,

		{StateReady, EventSyncLost}:    StateSyncing,
		{StateReady, EventStandbyLost}: StateProvisioning,
		{StateReady, EventResolved}:    StateRecovering,
		{StateReady, EventTeardown}:    StateRecovering,
		{StateReady, EventFail}:        StateFailed,
		{StateReady, EventApproved}:    StateMigrating,

		{StateMigrating, EventImported}: StateMigrated,
		{StateMigrating, EventFail}:     StateFailed,

		{StateMigrated, EventFailbackApproved}: StateFailingBack,
		{StateMigrated, EventFail}:             StateFailed,

		{StateFailingBack, EventStandbyDeleted}: StateClosed,
		{StateFailingBack, EventFail}:           StateFailed,

		{StateRecovering, EventRefired}:        StateProvisioning,
		{StateRecovering, EventStandbyDeleted}: StateClosed,
		{StateRecovering, EventFail}:           StateFailed,

		{StateFailed, EventTeardown}:         StateRecovering,
		{StateFailed, EventFailbackApproved}: StateFailingBack,
	}
	checked := 0
	for _, s := range States {
		for _, e := range Events {
			checked++
			got, err := Transition(s, e)
			want, ok := allowed[pair{s, e}]
			if ok {
				if err != nil || got != want {
					t.Errorf("Transition(%s, %s) = %s, %v; want %s", s, e, got, err, want)
				}
				continue
			}
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Errorf("Transition(%s, %s) = %s, %v; want a TransitionError", s, e, got, err)
			}
			if got != s {
				t.Errorf("refused Transition(%s, %s) moved to %s", s, e, got)
			}
		}
	}
	if checked != len(States)*len(Events) || checked < 70 {
		t.Fatalf("checked %d pairs", checked)
	}
}

func TestTransitionUnknownState(t *testing.T) {
	if _, err := Transition("hibernating", EventResolved); err == nil {
		t.Fatal("unknown state accepted")
	}
}

// TestClosedIsTerminal: nothing leaves closed, and closed is the only state
// that releases the validator.
func TestClosedIsTerminal(t *testing.T) {
	for _, e := range Events {
		if _, err := Transition(StateClosed, e); err == nil {
			t.Errorf("closed accepted %s", e)
		}
	}
	for _, s := range States {
		if s.Open() == (s == StateClosed) {
			t.Errorf("%s.Open() = %v", s, s.Open())
		}
	}
}

// TestEveryStateReachesClosed: from every state some path leads to closed,
// so no incident can be stuck for ever by the lifecycle itself.
func TestEveryStateReachesClosed(t *testing.T) {
	for _, start := range States {
		seen := map[State]bool{start: true}
		queue := []State{start}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, e := range Events {
				if n, err := Transition(s, e); err == nil && !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
		if !seen[StateClosed] {
			t.Errorf("no path from %s to closed", start)
		}
	}
}
