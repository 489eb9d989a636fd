package cloud_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws"
	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/cloudtest"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

// gcpPermissions maps the Compute REST requests the SDK sends to the IAM
// permissions each needs (every matching row is recorded). A request that
// matches none fails the test: a new call must be added here, to
// gcp.APICalls and to docs/cloud-permissions.md.
var gcpPermissions = []struct {
	method string
	path   *regexp.Regexp
	perm   string
}{
	{"POST", regexp.MustCompile(`/zones/[^/]+/instances$`), "compute.instances.create"},
	{"GET", regexp.MustCompile(`/zones/[^/]+/instances/[^/]+$`), "compute.instances.get"},
	{"DELETE", regexp.MustCompile(`/zones/[^/]+/instances/[^/]+$`), "compute.instances.delete"},
	{"GET", regexp.MustCompile(`/(aggregated|zones/[^/]+)/instances$`), "compute.instances.list"},
	{"GET", regexp.MustCompile(`/zones/[^/]+/disks/[^/]+$`), "compute.disks.get"},
	{"DELETE", regexp.MustCompile(`/zones/[^/]+/disks/[^/]+$`), "compute.disks.delete"},
	{"GET", regexp.MustCompile(`/(aggregated|zones/[^/]+)/disks$`), "compute.disks.list"},
	{"POST", regexp.MustCompile(`/zones/[^/]+/disks$`), "compute.disks.create"},
	{"GET", regexp.MustCompile(`/global/snapshots$`), "compute.snapshots.list"},
	// snapshots.insert needs three: the snapshot, the source disk, the labels.
	{"POST", regexp.MustCompile(`/global/snapshots$`), "compute.snapshots.create"},
	{"POST", regexp.MustCompile(`/global/snapshots$`), "compute.disks.createSnapshot"},
	{"POST", regexp.MustCompile(`/global/snapshots$`), "compute.snapshots.setLabels"},
	{"GET", regexp.MustCompile(`/global/snapshots/[^/]+$`), "compute.snapshots.get"},
	{"DELETE", regexp.MustCompile(`/global/snapshots/[^/]+$`), "compute.snapshots.delete"},
	{"POST", regexp.MustCompile(`/global/firewalls$`), "compute.firewalls.create"},
	{"GET", regexp.MustCompile(`/global/firewalls/[^/]+$`), "compute.firewalls.get"},
	{"DELETE", regexp.MustCompile(`/global/firewalls/[^/]+$`), "compute.firewalls.delete"},
	{"GET", regexp.MustCompile(`/global/firewalls$`), "compute.firewalls.list"},
	{"POST", regexp.MustCompile(`/zones/[^/]+/operations/[^/]+/wait$`), "compute.zoneOperations.get"},
	{"GET", regexp.MustCompile(`/zones/[^/]+/operations/[^/]+$`), "compute.zoneOperations.get"},
	{"POST", regexp.MustCompile(`/global/operations/[^/]+/wait$`), "compute.globalOperations.get"},
	{"GET", regexp.MustCompile(`/global/operations/[^/]+$`), "compute.globalOperations.get"},
}

// recorder collects what a fake saw.
type recorder struct {
	mu      sync.Mutex
	seen    map[string]bool
	unknown []string
}

func (r *recorder) add(perm, raw string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if perm == "" {
		r.unknown = append(r.unknown, raw)
		return
	}
	r.seen[perm] = true
}

func (r *recorder) perms() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p := range r.seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestPermissionsDocCoversEveryCall drives both real providers through the
// conformance suite, a snapshot-backed create and the garbage collector,
// records each request that reaches the cloud, and checks that every
// permission those requests need is in the provider's APICalls and in
// docs/cloud-permissions.md.
func TestPermissionsDocCoversEveryCall(t *testing.T) {
	doc, err := os.ReadFile("../docs/cloud-permissions.md")
	if err != nil {
		t.Fatal(err)
	}
	inDoc := func(p string) bool { return strings.Contains(string(doc), "`"+p+"`") }

	t.Run("gcp", func(t *testing.T) {
		rec := &recorder{seen: map[string]bool{}}
		newProvider := func(t *testing.T) cloud.Provider {
			fake := gcpfake.New()
			t.Cleanup(fake.Close)
			fake.Hook(func(r *http.Request) {
				matched := false
				for _, m := range gcpPermissions {
					if r.Method == m.method && m.path.MatchString(r.URL.Path) {
						rec.add(m.perm, "")
						matched = true
					}
				}
				if !matched {
					rec.add("", r.Method+" "+r.URL.Path)
				}
			})
			fake.AddSnapshot("chain-data-1", map[string]string{"chain": "ethereum", cloud.LabelValidator: "eth-1"}, time.Now().Add(-time.Hour))
			p, err := gcp.New(context.Background(), gcp.Options{Project: "perm-test", Endpoint: fake.URL(), DiskGB: 100,
				SnapshotLabels: map[string]string{"chain": "ethereum"}, APISourceRanges: []string{"203.0.113.0/24"},
				ClientOptions: []option.ClientOption{option.WithoutAuthentication()}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		cloudtest.Run(t, cloudtest.Harness{New: newProvider, Zones: []string{"europe-west4-a", "europe-west4-b"}})
		cloudtest.RunSnapshots(t, cloudtest.Harness{New: newProvider, Zones: []string{"europe-west4-a", "europe-west4-b"}})
		keepWarm(t, newProvider(t), cloudtest.Spec("eth-1-warm", "europe-west4-a"), map[string]string{"chain": "ethereum"})
		collect(t, newProvider(t), cloudtest.Spec("eth-1-1", "europe-west4-a"))
		check(t, rec.perms(), rec.unknown, gcp.APICalls, inDoc)
	})

	t.Run("aws", func(t *testing.T) {
		rec := &recorder{seen: map[string]bool{}}
		newProvider := func(t *testing.T) cloud.Provider {
			fake := ec2fake.New()
			t.Cleanup(fake.Close)
			fake.Hook(func(action string, _ url.Values) { rec.add("ec2:"+action, "") })
			fake.AddSnapshot("eu-west-1", ec2fake.Snapshot{Tags: map[string]string{"chain": "ethereum", cloud.LabelValidator: "eth-1"},
				State: "completed", SizeGB: 50, StartTime: time.Now().Add(-time.Hour)})
			p, err := aws.New(context.Background(), aws.Options{Zones: []string{"eu-west-1a", "eu-west-1b"},
				AMIs: map[string]string{"eu-west-1": "ami-0123456789abcdef0"}, InstanceType: "m6i.2xlarge", VolumeGB: 100,
				SnapshotTags: map[string]string{"chain": "ethereum"}, APISourceRanges: []string{"203.0.113.0/24"},
				Endpoint: fake.URL(), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		cloudtest.Run(t, cloudtest.Harness{New: newProvider, Zones: []string{"eu-west-1a", "eu-west-1b"}})
		cloudtest.RunSnapshots(t, cloudtest.Harness{New: newProvider, Zones: []string{"eu-west-1a", "eu-west-1b"}})
		keepWarm(t, newProvider(t), cloudtest.Spec("eth-1-warm", "eu-west-1a"), map[string]string{"chain": "ethereum"})
		collect(t, newProvider(t), cloudtest.Spec("eth-1-1", "eu-west-1a"))
		// CreateTags is not an action of its own here: tags ride on
		// RunInstances/CreateSecurityGroup/CreateSnapshot, but IAM checks
		// ec2:CreateTags.
		check(t, append(rec.perms(), "ec2:CreateTags"), rec.unknown, aws.APICalls, inDoc)
	})
}

// keepWarm is one snapshot keeper run: a standby, a snapshot of its data
// disk labelled as provisioning selects, the standby deleted, a later
// incident of the same validator created (from the snapshot), and the
// snapshot pruned.
func keepWarm(t *testing.T, p cloud.Provider, spec cloud.StandbySpec, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	spec.Validator = "eth-1"
	s, ok := p.(cloud.Snapshotter)
	if !ok {
		t.Fatalf("%s is not a cloud.Snapshotter", p.Name())
	}
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	snap, err := s.SnapshotData(ctx, spec.Name, "warm-eth-1", labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, err := s.Snapshots(ctx, spec.Validator)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) > 0 && l[0].ID == snap.ID && l[0].Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s not ready: %+v", snap.Name, l)
		}
	}
	next := spec
	next.IncidentID += "-next"
	next.Name = cloud.NameFor(next.IncidentID)
	if _, err := p.Ensure(ctx, next); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, next.Name); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot(ctx, snap.Name); err != nil {
		t.Fatal(err)
	}
}

// collect creates a standby, drops it from every incident's claim (there is
// no store here) and lets the provider list and delete all it owns, as the
// garbage collector does.
func collect(t *testing.T, p cloud.Provider, spec cloud.StandbySpec) {
	t.Helper()
	ctx := context.Background()
	spec.Validator = "eth-1"
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	c, ok := p.(cloud.Collector)
	if !ok {
		t.Fatalf("%s is not a cloud.Collector", p.Name())
	}
	rs, err := c.ListOwned(ctx)
	if err != nil || len(rs) == 0 {
		t.Fatalf("ListOwned: %v %v", rs, err)
	}
	for _, r := range rs {
		// Attached disks and groups in use refuse until their instance is
		// gone; the collector retries them on its next run, and so do we.
		_ = c.DeleteOwned(ctx, r)
	}
	for _, r := range rs {
		_ = c.DeleteOwned(ctx, r)
	}
}

func check(t *testing.T, used, unknown, declared []string, inDoc func(string) bool) {
	t.Helper()
	if len(unknown) > 0 {
		t.Errorf("requests with no known permission (add them to the mapping, APICalls and the doc): %v", unknown)
	}
	if len(used) < 5 {
		t.Fatalf("only %v recorded: the recording is broken", used)
	}
	for _, p := range used {
		if !slices.Contains(declared, p) {
			t.Errorf("the code calls %s but APICalls does not list it", p)
		}
	}
	for _, p := range declared {
		if !inDoc(p) {
			t.Errorf("docs/cloud-permissions.md does not list `%s`", p)
		}
	}
	t.Logf("permissions used: %v", used)
}
