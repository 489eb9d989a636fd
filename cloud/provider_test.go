package cloud_test

import (
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// TestReadiness: a standby is ready only when every condition holds; each
// condition alone makes it not ready and is named.
func TestReadiness(t *testing.T) {
	ready := cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Health: 200, Peers: 40,
		ExecutionPeers: 30, SyncDistance: 1, ClockOffset: 120 * time.Millisecond}
	if !ready.Ready() {
		t.Fatalf("ready status refused: %v", ready.NotReady())
	}
	for _, tt := range []struct {
		name   string
		break_ func(*cloud.SyncStatus)
		want   string
	}{
		{"execution syncing", func(s *cloud.SyncStatus) { s.ExecutionSynced = false }, "execution client syncing"},
		{"beacon syncing", func(s *cloud.SyncStatus) { s.ConsensusSynced = false }, "beacon node syncing"},
		{"optimistic", func(s *cloud.SyncStatus) { s.Optimistic = true }, "optimistic"},
		{"el offline", func(s *cloud.SyncStatus) { s.ELOffline = true }, "offline"},
		{"two slots behind", func(s *cloud.SyncStatus) { s.SyncDistance = 2 }, "2 slots behind"},
		{"health 206", func(s *cloud.SyncStatus) { s.Health = 206 }, "health 206"},
		{"no beacon peers", func(s *cloud.SyncStatus) { s.Peers = 0 }, "beacon node has 0 peers"},
		{"no execution peers", func(s *cloud.SyncStatus) { s.ExecutionPeers = 0 }, "execution client has 0 peers"},
		{"clock ahead", func(s *cloud.SyncStatus) { s.ClockOffset = 501 * time.Millisecond }, "clock off"},
		{"clock behind", func(s *cloud.SyncStatus) { s.ClockOffset = -time.Second }, "clock off"},
	} {
		s := ready
		tt.break_(&s)
		why := s.NotReady()
		if s.Ready() || len(why) != 1 || !strings.Contains(why[0], tt.want) {
			t.Errorf("%s: ready=%v, why %v, want one reason containing %q", tt.name, s.Ready(), why, tt.want)
		}
	}
}
