package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover/kube/kubetest"
)

// applyCRDs creates the chart's custom resource definitions and waits until
// the apiserver serves them.
func applyCRDs(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.RESTConfig(kubetest.Admin))
	if err != nil {
		t.Fatal(err)
	}
	crdRes := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	files, _ := filepath.Glob("../charts/failoverd/crds/*.yaml")
	if len(files) == 0 {
		t.Fatal("no CRDs in charts/failoverd/crds")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, err := dyn.Resource(crdRes).Create(context.Background(), u, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("create %s: %v", f, err)
		}
		waitFor(t, "CRD "+u.GetName()+" established", 20*time.Second, func() (bool, string) {
			got, err := dyn.Resource(crdRes).Get(context.Background(), u.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, ""
				}
			}
			return false, fmt.Sprint(conds)
		})
	}
}

// leaseHolder is who holds the leader lease.
func leaseHolder(t *testing.T, c *kubetest.Cluster, ns string) string {
	cs, err := c.Clientset(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), "failoverd-leader", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestTwoReplicasSurviveTheLeader: two replicas of the real binary share the
// Kubernetes store on a real kube-apiserver and one cloud. A delivery to
// the follower is reconciled by the leader; when the leader is killed, the
// follower takes the lease within its duration and carries every incident
// on; nothing is provisioned twice.
func TestTwoReplicasSurviveTheLeader(t *testing.T) {
	bin, _ := binaries(t)
	c := kubetest.Start(t)
	ctx := context.Background()
	ns := "failoverd-ha"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	applyCRDs(t, c)
	fake := gcpfake.New()
	defer fake.Close()

	dir := t.TempDir()
	seed := filepath.Join(dir, "ca-seed")
	if err := os.WriteFile(seed, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	type replica struct {
		name, base string
		cfg        string
		proc       *proc
	}
	var reps []*replica
	for _, name := range []string{"replica-a", "replica-b"} {
		port := freePort(t)
		cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
dataDir: %s
store:
  type: kubernetes
  kubeconfig: %s
  namespace: %s
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 500ms
engine:
  confirmFor: 0s
  pollInterval: 300ms
  resyncInterval: 500ms
agent:
  caSeedFile: %s
cloud:
  providers: [gcp]
  gcp:
    project: staking-ha
    zones: [europe-west4-a]
    endpoint: %s
    insecureNoAuth: true
    apiSourceRanges: [127.0.0.1/32]
fleet:
  - name: eth-mainnet-1
    chain: ethereum
    network: mainnet
    site: basement
    clients: {execution: {name: geth, version: v1.16.7}, consensus: {name: lighthouse, version: v8.0.1}}
  - name: eth-mainnet-2
    chain: ethereum
    network: mainnet
    site: basement
    clients: {execution: {name: geth, version: v1.16.7}, consensus: {name: lighthouse, version: v8.0.1}}
`, port, filepath.Join(dir, name), c.Kubeconfig(kubetest.Admin), ns, seed, fake.URL())
		f := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, &replica{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port), cfg: f})
	}
	run := func(r *replica) {
		r.proc = start(t, r.name, []string{"POD_NAME=" + r.name, "FAILOVERD_WEBHOOK_TOKEN=" + webhookToken,
			"FAILOVERD_API_TOKEN=" + apiToken}, bin, "serve", "--config", r.cfg)
		waitFor(t, r.name+" /readyz", 30*time.Second, func() (bool, string) {
			code, body, err := httpGet(r.base+"/readyz", "")
			return err == nil && code == 200, fmt.Sprint(code, string(body), err)
		})
	}
	run(reps[0])
	waitFor(t, "replica-a leads", 20*time.Second, func() (bool, string) {
		h := leaseHolder(t, c, ns)
		return h == "replica-a", h
	})
	run(reps[1])

	fire := func(r *replica, validator string) {
		t.Helper()
		body, _ := os.ReadFile("../failover/alertmanager/testdata/validator-down-firing.json")
		body = bytes.ReplaceAll(body, []byte("eth-mainnet-1"), []byte(validator))
		body = bytes.Replace(body, []byte(`"2026-11-21T08:59:34.387112228Z"`), []byte(`"`+time.Now().UTC().Format(time.RFC3339)+`"`), 1)
		req, _ := http.NewRequest(http.MethodPost, r.base+"/webhook/alertmanager", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+webhookToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook to %s: %v %v", r.name, resp, err)
		}
		resp.Body.Close()
	}
	stateOf := func(r *replica, validator string) (incident, int) {
		incs, err := incidents(r.base)
		if err != nil {
			return incident{}, -1
		}
		n, last := 0, incident{}
		for _, inc := range incs {
			if strings.HasPrefix(inc.ID, validator+"-") {
				n++
				last = inc
			}
		}
		return last, n
	}

	// A delivery to the follower: the leader provisions it.
	fire(reps[1], "eth-mainnet-1")
	waitFor(t, "incident 1 provisioned by the leader", 30*time.Second, func() (bool, string) {
		inc, n := stateOf(reps[1], "eth-mainnet-1")
		return n == 1 && inc.State == "syncing", fmt.Sprintf("%d incidents, %s: %s", n, inc.State, inc.Reason)
	})
	if fake.Created("instance") != 1 {
		t.Fatalf("%d instances for one incident", fake.Created("instance"))
	}

	// The leader dies (SIGKILL: it cannot release the lease).
	killed := time.Now()
	reps[0].proc.cmd.Process.Kill()
	reps[0].proc.cmd.Wait()
	waitFor(t, "replica-b takes the lease", 20*time.Second, func() (bool, string) {
		h := leaseHolder(t, c, ns)
		return h == "replica-b", h
	})
	t.Logf("replica-b leads %s after the leader's death (lease duration 4s)", time.Since(killed).Round(100*time.Millisecond))

	// The new leader handles a new outage and keeps polling the old one.
	fire(reps[1], "eth-mainnet-2")
	waitFor(t, "incident 2 provisioned by the new leader", 30*time.Second, func() (bool, string) {
		inc, n := stateOf(reps[1], "eth-mainnet-2")
		return n == 1 && inc.State == "syncing", fmt.Sprintf("%d incidents, %s: %s", n, inc.State, inc.Reason)
	})
	inc1, n := stateOf(reps[1], "eth-mainnet-1")
	if n != 1 || inc1.State != "syncing" {
		t.Fatalf("incident 1 after the failover: %d incidents, %s (%s)", n, inc1.State, inc1.Reason)
	}
	if fake.Created("instance") != 2 || fake.Instances() != 2 {
		t.Fatalf("%d instances created (%d live) for two incidents", fake.Created("instance"), fake.Instances())
	}
	provisioned := 0
	for _, h := range inc1.History {
		if h.To == "syncing" {
			provisioned++
		}
	}
	if provisioned != 1 {
		t.Fatalf("incident 1 was provisioned %d times: %s", provisioned, path(inc1))
	}
}
