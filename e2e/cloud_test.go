package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws"
	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/store/bolt"
)

// pages records what the engine would have paged about.
type pages struct {
	mu     sync.Mutex
	states []failover.State
}

func (p *pages) Notify(_ context.Context, inc failover.Incident) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states = append(p.states, inc.State)
	return nil
}

// clouds is an engine on the real GCP and AWS providers, whose SDK clients
// talk to the local wire servers.
type clouds struct {
	t      *testing.T
	ctx    context.Context
	gcp    *gcpfake.Server
	ec2    *ec2fake.Server
	cfg    *config.Config
	store  *bolt.Store
	eng    *failover.Engine
	pages  *pages
	offset atomic.Int64 // added to the engine's clock
}

func newClouds(t *testing.T, providers []string) *clouds {
	t.Helper()
	ctx := context.Background()
	c := &clouds{t: t, ctx: ctx, gcp: gcpfake.New(), ec2: ec2fake.New(), pages: &pages{}}
	t.Cleanup(c.gcp.Close)
	t.Cleanup(c.ec2.Close)

	cfg := config.Default()
	cfg.Engine.ConfirmFor = 0
	cfg.Engine.MaxAttempts = 1
	cfg.Cloud.Providers = providers
	cfg.Cloud.GCP.Project = "staking-e2e"
	cfg.Cloud.GCP.Zones = []string{"europe-west4-a", "europe-west4-b"}
	cfg.Cloud.AWS.Zones = []string{"eu-west-1a", "eu-west-1b"}
	cfg.Cloud.AWS.AMIs = map[string]string{"eu-west-1": "ami-0123456789abcdef0"}
	cfg.Cloud.GC.GracePeriod = 30 * time.Minute
	cfg.Fleet = []config.Validator{
		{Name: "eth-1", Chain: "ethereum", Network: "hoodi", Site: "basement"},
		{Name: "eth-2", Chain: "ethereum", Network: "hoodi", Site: "basement"},
	}
	c.cfg = &cfg

	g, err := gcp.New(ctx, gcp.Options{Project: cfg.Cloud.GCP.Project, Endpoint: c.gcp.URL(),
		ClientOptions: []option.ClientOption{option.WithoutAuthentication()}, OperationTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := aws.New(ctx, aws.Options{Zones: cfg.Cloud.AWS.Zones, AMIs: cfg.Cloud.AWS.AMIs,
		InstanceType: cfg.Cloud.AWS.InstanceType, VolumeGB: 100, Endpoint: c.ec2.URL(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer:     func() awssdk.Retryer { return awssdk.NopRetryer{} }})
	if err != nil {
		t.Fatal(err)
	}
	c.store, err = bolt.Open(filepath.Join(t.TempDir(), "f.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.store.Close() })
	c.eng, err = failover.New(failover.Options{Config: c.cfg, Store: c.store, Providers: []cloud.Provider{g, a},
		Notifier: c.pages, Now: func() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *clouds) outage(validator string) failover.Incident {
	c.t.Helper()
	obs := failover.Observation{Validator: validator, Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: "fp-" + validator, Status: failover.AlertFiring, StartsAt: time.Now().Add(-time.Minute)}
	if _, err := c.eng.Observe(c.ctx, []failover.Observation{obs}, nil); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.eng.Reconcile(c.ctx, validator); err != nil {
		c.t.Fatal(err)
	}
	incs, err := c.store.ListIncidents(c.ctx, failover.ListOptions{Validator: validator})
	if err != nil || len(incs) != 1 {
		c.t.Fatalf("incidents of %s: %v %v", validator, incs, err)
	}
	return incs[0]
}

func historyMentions(inc failover.Incident, parts ...string) bool {
	for _, h := range inc.History {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(h.Cause, p)
		}
		if all {
			return true
		}
	}
	return false
}

func TestFallbackToSecondZone(t *testing.T) {
	c := newClouds(t, []string{"gcp", "aws"})
	c.gcp.ExhaustZone("europe-west4-a")
	inc := c.outage("eth-1")
	if inc.State != failover.StateSyncing || inc.Standby.Provider != "gcp" || inc.Standby.Zone != "europe-west4-b" {
		t.Fatalf("%s: %+v (%s)", inc.State, inc.Standby, inc.Reason)
	}
	if !historyMentions(inc, "gcp/europe-west4-a", "trying gcp/europe-west4-b") {
		t.Fatalf("the exhausted zone is not in the history: %+v", inc.History)
	}
	if c.gcp.Instances() != 1 || c.ec2.Instances() != 0 {
		t.Fatalf("gcp %d, aws %d instances", c.gcp.Instances(), c.ec2.Instances())
	}
}

func TestFallbackToNextProvider(t *testing.T) {
	c := newClouds(t, []string{"gcp", "aws"})
	c.gcp.ExhaustZone("europe-west4-a")
	c.gcp.ExhaustZone("europe-west4-b")
	inc := c.outage("eth-1")
	if inc.State != failover.StateSyncing || inc.Standby.Provider != "aws" || inc.Standby.Zone != "eu-west-1a" {
		t.Fatalf("%s: %+v (%s)", inc.State, inc.Standby, inc.Reason)
	}
	if !historyMentions(inc, "gcp/europe-west4-b", "trying aws/eu-west-1a") {
		t.Fatalf("the move to AWS is not in the history: %+v", inc.History)
	}
	if c.gcp.Instances() != 0 || c.ec2.Instances() != 1 {
		t.Fatalf("gcp %d, aws %d instances", c.gcp.Instances(), c.ec2.Instances())
	}
	if inc.Standby.HourlyUSD != c.cfg.HourlyCost("aws") {
		t.Fatalf("priced at %v, want the AWS price %v", inc.Standby.HourlyUSD, c.cfg.HourlyCost("aws"))
	}
}

func TestAllExhaustedFailsAndPages(t *testing.T) {
	c := newClouds(t, []string{"gcp", "aws"})
	c.gcp.ExhaustZone("europe-west4-a")
	c.gcp.ExhaustZone("europe-west4-b")
	c.ec2.SetNoCapacity("eu-west-1a", true)
	c.ec2.SetNoCapacity("eu-west-1b", true)
	inc := c.outage("eth-1")
	if inc.State != failover.StateFailed {
		t.Fatalf("%s: %s", inc.State, inc.Reason)
	}
	for _, want := range []string{"every zone", "gcp/europe-west4-a", "aws/eu-west-1b", "a person must decide"} {
		if !strings.Contains(inc.Reason, want) {
			t.Fatalf("reason %q lacks %q", inc.Reason, want)
		}
	}
	if len(c.pages.states) != 1 || c.pages.states[0] != failover.StateFailed {
		t.Fatalf("pages %v", c.pages.states)
	}
	if c.gcp.Instances()+c.ec2.Instances() != 0 || c.gcp.Disks() != 0 {
		t.Fatalf("a failed placement left %d gcp, %d aws instances, %d disks", c.gcp.Instances(), c.ec2.Instances(), c.gcp.Disks())
	}
}

// TestGarbageCollectorOnRealProviders: an owned instance no incident claims
// goes after the grace period (with its disks, rules and security group); a
// claimed one never does; a machine failoverd does not own is never touched.
func TestGarbageCollectorOnRealProviders(t *testing.T) {
	c := newClouds(t, []string{"gcp", "aws"})
	claimed := c.outage("eth-1")
	if claimed.Standby.Provider != "gcp" {
		t.Fatalf("%+v", claimed.Standby)
	}
	// Orphans: standbys of an incident the store does not know (a restore
	// from an old backup, a hand-edited store), on both clouds.
	orphan := cloud.StandbySpec{Name: "fo-eth-9-1", IncidentID: "eth-9-1", Validator: "eth-9", Site: "basement", Zone: "europe-west4-a"}
	for name, p := range c.providers() {
		spec := orphan
		if name == "aws" {
			spec.Zone = "eu-west-1a"
		}
		if _, err := p.Ensure(c.ctx, spec); err != nil {
			t.Fatalf("%s orphan: %v", name, err)
		}
	}
	c.gcp.AddUnownedInstance("europe-west4-a", "operators-own-vm")
	awsUnowned := c.ec2.AddUnownedInstance("eu-west-1a", "operators-own-vm")

	res, err := c.eng.CollectGarbage(c.ctx)
	if err != nil || len(res.Deleted) != 0 || res.Young == 0 {
		t.Fatalf("inside the grace period: %+v %v", res, err)
	}
	c.offset.Store(int64(31 * time.Minute))
	res, err = c.eng.CollectGarbage(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Deleted {
		if r.Labels[cloud.LabelIncident] == "eth-1-1" || strings.Contains(r.Name, "eth-1-1") {
			t.Fatalf("deleted a claimed resource: %+v", r)
		}
	}
	if c.gcp.Instances() != 2 { // the claimed standby and the operator's VM
		t.Fatalf("gcp has %d instances after collection", c.gcp.Instances())
	}
	if c.gcp.Instance("europe-west4-a", "operators-own-vm") == nil || c.gcp.Instance(claimed.Standby.Zone, claimed.Standby.Name) == nil {
		t.Fatal("collector touched the operator's VM or the claimed standby")
	}
	if c.ec2.Instances() != 1 || len(c.ec2.InstancesNamed("operators-own-vm")) != 1 {
		t.Fatalf("aws: %d live instances; the operator's %s must be the one left", c.ec2.Instances(), awsUnowned)
	}
	if len(c.ec2.InstancesNamed("fo-eth-9-1")) == 1 && c.ec2.InstancesNamed("fo-eth-9-1")[0].State != "terminated" &&
		c.ec2.InstancesNamed("fo-eth-9-1")[0].State != "shutting-down" {
		t.Fatalf("aws orphan still running: %+v", c.ec2.InstancesNamed("fo-eth-9-1")[0])
	}
	kinds := map[string]bool{}
	for _, r := range res.Deleted {
		kinds[r.Provider+"/"+r.Kind] = true
	}
	if !kinds["gcp/instance"] || !kinds["gcp/firewall"] || !kinds["aws/instance"] {
		t.Fatalf("deleted kinds %v", kinds)
	}
}

func (c *clouds) providers() map[string]cloud.Provider {
	g, _ := gcp.New(c.ctx, gcp.Options{Project: c.cfg.Cloud.GCP.Project, Endpoint: c.gcp.URL(),
		ClientOptions: []option.ClientOption{option.WithoutAuthentication()}})
	a, _ := aws.New(c.ctx, aws.Options{Zones: c.cfg.Cloud.AWS.Zones, AMIs: c.cfg.Cloud.AWS.AMIs,
		InstanceType: c.cfg.Cloud.AWS.InstanceType, VolumeGB: 100, Endpoint: c.ec2.URL(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	return map[string]cloud.Provider{"gcp": g, "aws": a}
}
