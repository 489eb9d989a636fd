package failover

import (
	"context"
	"sync"
	"time"
)

// queue hands validator names to workers. A name is never given to two
// workers at once; a name added while it is being worked on is handed out
// again once that work is done. Adding a name that is already waiting keeps
// the earlier due time, so a storm of webhooks collapses into one reconcile.
type queue struct {
	mu     sync.Mutex
	due    map[string]time.Time
	active map[string]bool
	wake   chan struct{}
}

func newQueue() *queue {
	return &queue{due: map[string]time.Time{}, active: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add schedules name at time at (now or later).
func (q *queue) add(name string, at time.Time) {
	q.mu.Lock()
	if cur, ok := q.due[name]; !ok || at.Before(cur) {
		q.due[name] = at
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// get blocks until a name is due and not active, or ctx ends.
func (q *queue) get(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		now := time.Now()
		var next string
		var nextAt time.Time
		for name, at := range q.due {
			if q.active[name] {
				continue
			}
			if next == "" || at.Before(nextAt) {
				next, nextAt = name, at
			}
		}
		if next != "" && !nextAt.After(now) {
			delete(q.due, next)
			q.active[next] = true
			more := len(q.due) > 0
			q.mu.Unlock()
			if more {
				// Let an idle worker look at the rest.
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return next, true
		}
		q.mu.Unlock()

		wait := time.Hour
		if next != "" {
			wait = nextAt.Sub(now)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", false
		case <-q.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// done releases name; if it was re-added meanwhile it becomes eligible again.
func (q *queue) done(name string) {
	q.mu.Lock()
	delete(q.active, name)
	_, again := q.due[name]
	q.mu.Unlock()
	if again {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// len is the number of names waiting (for the queue depth gauge).
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.due)
}
