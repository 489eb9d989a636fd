// Package simulation runs failoverd's real engine in a deterministic world:
// simulated clouds under real provider names, a store that fails and loses
// answers, a process that crashes at any call, Alertmanager deliveries that
// arrive duplicated, reordered or not at all, sites that go dark, standby
// agents and home validator clients that follow the real rules, and people
// who approve migrations and failbacks (or try to with bad approvals). A
// seeded random schedule drives it; after every step the invariants of
// DESIGN.md are checked. A seed replays exactly, so a failing seed is a bug
// report: see README.md.
package simulation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/pki"
)

// DefaultSteps is the length of a run's random schedule; a calm end follows
// in which every incident must come to rest.
const DefaultSteps = 200

// Options choose what a run simulates.
type Options struct {
	// Steps is the number of random steps (DefaultSteps when 0).
	Steps int
	// Break plants one deliberate defect in the world, to prove that the
	// checker notices (see Breaks); "" for none.
	Break string
}

// Breaks are the defects Options.Break can plant, each with the invariant
// that must catch it.
var Breaks = map[string]string{
	// The standby agent imports whatever it is sent.
	"agent-skips-checks": "import",
	// The store acknowledges an ownership change and never writes it. The
	// gate then stays shut (the move never lands), so no second signer
	// starts: the incident is stuck, which the liveness check reports.
	"store-forgets-owner": "liveness",
	// The store writes generation 1 over any later one.
	"store-resets-generation": "owner",
	// The store drops the reason of a provisioning incident.
	"store-drops-reason": "reason",
	// Alertmanager takes failoverd's alerts and drops them.
	"pager-drops": "reason",
	// The clouds ignore deletes.
	"cloud-leaks": "cloud",
	// The clouds create a new node on every Ensure.
	"cloud-duplicates": "caps",
}

// Violation is an invariant that did not hold.
type Violation struct {
	Step      int    // 0: during setup; Steps+n: in the calm end
	Invariant string // owner, import, cloud, reason, caps, engine, liveness, panic
	Detail    string
}

func (v *Violation) String() string {
	return fmt.Sprintf("step %d: invariant %q violated: %s", v.Step, v.Invariant, v.Detail)
}

// Result is one run.
type Result struct {
	Seed      uint64
	Options   Options
	Trace     []string
	Violation *Violation
	Stats     Stats
}

// Replay is the command that runs this seed again, with the same trace.
func (r Result) Replay() string { return ReplayCommand(r.Seed, r.Options) }

// ReplayCommand is the one-line command that replays a seed.
func ReplayCommand(seed uint64, o Options) string {
	env := fmt.Sprintf("FAILOVERD_SIM_SEED=%d", seed)
	if o.Steps != 0 && o.Steps != DefaultSteps {
		env += fmt.Sprintf(" FAILOVERD_SIM_STEPS=%d", o.Steps)
	}
	if o.Break != "" {
		env += " FAILOVERD_SIM_BREAK=" + o.Break
	}
	return env + " go test ./failover/simulation/ -run 'TestSimulation$' -count=1 -v"
}

// Report is a failed run as a person reads it: the violation, the replay
// command and the trace.
func (r Result) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s\nreplay: %s\ntrace:\n", r.Seed, r.Violation, r.Replay())
	for _, l := range r.Trace {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// Fixtures are what every run shares: failoverd's standby CA (it signs the
// grants) and the approvers' SSH keys. Both are the same in every run, so a
// seed replays the same bytes anywhere.
type Fixtures struct {
	CA      *pki.Authority
	Allowed approval.AllowedSigners
	// AllowedLines are the allowed-signers lines (approval.allowedSigners).
	AllowedLines []string
	signers      map[string]ssh.Signer
}

// Approvers: three allowed, one not.
var (
	allowedApprovers = []string{"alice", "bob", "carol"}
	strangers        = []string{"mallory"}
)

// NewFixtures makes the fixtures, keeping the CA in dir (which must be
// writable; a test's TempDir).
func NewFixtures(dir string) (*Fixtures, error) {
	seed := sha256.Sum256([]byte("failoverd simulation CA"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, pki.SeedFile), seed[:], 0o600); err != nil && !os.IsExist(err) {
		return nil, err
	}
	ca, err := pki.LoadOrCreate(dir)
	if err != nil {
		return nil, err
	}
	fx := &Fixtures{CA: ca, signers: map[string]ssh.Signer{}}
	for _, who := range slices.Concat(allowedApprovers, strangers) {
		k := sha256.Sum256([]byte("failoverd simulation approver " + who))
		s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(k[:]))
		if err != nil {
			return nil, err
		}
		fx.signers[who] = s
		if slices.Contains(allowedApprovers, who) {
			fx.AllowedLines = append(fx.AllowedLines, who+"@example "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))))
		}
	}
	if fx.Allowed, err = approval.ParseAllowedSigners(fx.AllowedLines); err != nil {
		return nil, err
	}
	return fx, nil
}

// Stats count what runs did.
type Stats struct {
	Seeds, Steps int
	// SimTime is the simulated time the runs covered.
	SimTime time.Duration
	// Faults are the failures injected, by kind.
	Faults map[string]int
	// Counts are everything else worth knowing (actions, outcomes).
	Counts     map[string]int
	Violations int
}

func (s *Stats) add(what string, n int) {
	if s.Counts == nil {
		s.Counts = map[string]int{}
	}
	s.Counts[what] += n
}

// Merge adds o to s.
func (s *Stats) Merge(o Stats) {
	s.Seeds += o.Seeds
	s.Steps += o.Steps
	s.SimTime += o.SimTime
	s.Violations += o.Violations
	for k, v := range o.Faults {
		if s.Faults == nil {
			s.Faults = map[string]int{}
		}
		s.Faults[k] += v
	}
	for k, v := range o.Counts {
		s.add(k, v)
	}
}

// FaultsTotal is the number of injected failures.
func (s Stats) FaultsTotal() int {
	n := 0
	for _, v := range s.Faults {
		n += v
	}
	return n
}

// Summary is the one line for docs/reliability.md. Violations exclude the
// known engine bugs (known.go), which it lists with the seeds that met them.
func (s Stats) Summary() string {
	line := fmt.Sprintf("simulation: %d seeds, %d steps, %s simulated; %d faults injected (%s); %d key migrations, %d failbacks, %d crashes; %d invariant violations",
		s.Seeds, s.Steps, s.SimTime.Round(time.Hour), s.FaultsTotal(), formatCounts(s.Faults),
		s.Counts["migrations completed"], s.Counts["failbacks completed"], s.Faults["crash"], s.Violations)
	var known []string
	for _, k := range sortedKeys(s.Counts) {
		if bug, ok := strings.CutPrefix(k, "seeds meeting known engine bug: "); ok {
			known = append(known, fmt.Sprintf("%s %d", bug, s.Counts[k]))
		}
	}
	if len(known) > 0 {
		line += "; seeds meeting known engine bugs: " + strings.Join(known, ", ")
	}
	return line
}

// Details lists every counter, one per line.
func (s Stats) Details() string {
	var b strings.Builder
	b.WriteString("faults injected:\n")
	for _, k := range sortedKeys(s.Faults) {
		fmt.Fprintf(&b, "  %-40s %d\n", k, s.Faults[k])
	}
	b.WriteString("what happened:\n")
	for _, k := range sortedKeys(s.Counts) {
		fmt.Fprintf(&b, "  %-40s %d\n", k, s.Counts[k])
	}
	return b.String()
}

// formatCounts groups fault kinds by their first word (store, cloud, ...).
func formatCounts(m map[string]int) string {
	groups := map[string]int{}
	for k, v := range m {
		groups[strings.Fields(k)[0]] += v
	}
	var parts []string
	for _, k := range sortedKeys(groups) {
		parts = append(parts, fmt.Sprintf("%s %d", k, groups[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// streamOf names an independent random stream of a run.
func streamOf(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}
