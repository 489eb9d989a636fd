package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/kube/kubetest"
	"github.com/failoverd/failoverd/failover/store/storetest"
)

// crdDir holds the chart's CRDs: the tests install exactly what helm does.
const crdDir = "../../../charts/failoverd/crds"

var (
	cluster    *kubetest.Cluster
	clusterErr error
)

func TestMain(m *testing.M) {
	start := time.Now()
	cluster, clusterErr = kubetest.StartCluster("")
	if clusterErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		clusterErr = installCRDs(ctx, cluster.RESTConfig(kubetest.Admin))
		cancel()
		if clusterErr != nil {
			clusterErr = fmt.Errorf("install CRDs: %w", clusterErr)
		}
		fmt.Fprintf(os.Stderr, "kube store tests: cluster and CRDs ready in %s\n", time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates every CRD in crdDir and waits until each is
// established and its resource answers a list.
func installCRDs(ctx context.Context, cfg *rest.Config) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) != len(Resources) {
		return fmt.Errorf("%s has %d CRDs, want %d (%v)", crdDir, len(files), len(Resources), files)
	}
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		var obj unstructured.Unstructured
		if err := obj.UnmarshalJSON(js); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		names = append(names, obj.GetName())
	}
	for _, name := range names {
		if err := waitEstablished(ctx, dyn, name); err != nil {
			return err
		}
	}
	s, err := New(cfg, Options{Namespace: "default"})
	if err != nil {
		return err
	}
	for _, plural := range Resources {
		for {
			err := s.client.Get().Namespace("default").Resource(plural).Do(ctx).Error()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s not served: %w", plural, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	for {
		crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
			if m["type"] == "NamesAccepted" && m["status"] == "False" {
				return fmt.Errorf("CRD %s: names not accepted: %v", name, m["message"])
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var nsSeq atomic.Int64

// namespace makes a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	kubetest.Need(t, clusterErr)
	ns := fmt.Sprintf("store-%d", nsSeq.Add(1))
	if err := cluster.CreateNamespace(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

func newStore(t *testing.T, user, ns string) *Store {
	t.Helper()
	s, err := New(cluster.RESTConfig(user), Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// grantStore binds user, in ns, to exactly the permissions the package
// documentation lists, and waits until the authorizer sees the binding.
func grantStore(t *testing.T, user, ns string) {
	t.Helper()
	cs, err := cluster.Clientset(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "failoverd-store"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{Group},
			Resources: Resources,
			Verbs:     []string{"get", "list", "create", "update"},
		}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "failoverd-store"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, user, ns)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.ListSnapshotRuns(t.Context(), "")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("binding not effective after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestContract runs the store contract as the daemon's identity, holding
// only the documented permissions, each case in a namespace of its own.
func TestContract(t *testing.T) {
	kubetest.Need(t, clusterErr)
	storetest.Run(t, func(t *testing.T) failover.Store {
		ns := namespace(t)
		grantStore(t, kubetest.Failoverd, ns)
		return newStore(t, kubetest.Failoverd, ns)
	})
}

// TestKeysThatAreNotNames stores records whose keys are not Kubernetes
// names, and keys that look like the names others are encoded to.
func TestKeysThatAreNotNames(t *testing.T) {
	s := newStore(t, kubetest.Admin, namespace(t))
	ctx := t.Context()
	encoded, err := ObjectName("Basement Site")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "basement-site--") {
		t.Errorf("ObjectName(Basement Site) = %q, want a readable slug first", encoded)
	}
	keys := []string{
		"Basement Site",
		"basement-site",
		encoded, // a valid name that looks encoded: must not be the object of "Basement Site"
		"home",
		"UPPER",
		"a/b",
		"a.b",
		"-leading",
		"Zürich ☃",
		"x",
		"---",
		strings.Repeat("long-", 60), // longer than a name may be
	}
	names := map[string]string{}
	for _, k := range keys {
		n, err := ObjectName(k)
		if err != nil {
			t.Fatalf("ObjectName(%q): %v", k, err)
		}
		if prev, ok := names[n]; ok {
			t.Fatalf("keys %q and %q share the object name %q", prev, k, n)
		}
		names[n] = k
	}
	for i, k := range keys {
		site := failover.SiteRecord{Name: k, LastHeartbeat: time.Date(2026, 11, 21, 10, 0, 0, i+1, time.UTC), HeartbeatsSeen: int64(i)}
		if err := s.PutSite(ctx, &site); err != nil {
			t.Fatalf("put site %q: %v", k, err)
		}
		val := failover.ValidatorRecord{Name: k, Site: k, Seq: i}
		if err := s.PutValidator(ctx, &val); err != nil {
			t.Fatalf("put validator %q: %v", k, err)
		}
		inc := failover.Incident{ID: k + "-1", Validator: k, State: failover.StateSyncing, CreatedAt: time.Date(2026, 11, 21, 10, 0, i, 0, time.UTC)}
		if err := s.PutIncident(ctx, &inc); err != nil {
			t.Fatalf("put incident %q: %v", inc.ID, err)
		}
		run := failover.SnapshotRun{ID: k + "/run", Validator: k, State: failover.RunSyncing, CreatedAt: inc.CreatedAt}
		if err := s.PutSnapshotRun(ctx, &run); err != nil {
			t.Fatalf("put snapshot run %q: %v", run.ID, err)
		}
		// Uniqueness holds for encoded names too.
		dup := failover.SiteRecord{Name: k}
		if err := s.PutSite(ctx, &dup); !errors.Is(err, failover.ErrConflict) {
			t.Errorf("second create of site %q: got %v, want ErrConflict", k, err)
		}
	}
	for i, k := range keys {
		site, err := s.GetSite(ctx, k)
		if err != nil || site.Name != k || site.HeartbeatsSeen != int64(i) {
			t.Errorf("get site %q: %+v, %v", k, site, err)
		}
		// Update through the encoded name.
		site.HeartbeatsSeen += 100
		if err := s.PutSite(ctx, &site); err != nil {
			t.Errorf("update site %q: %v", k, err)
		}
		val, err := s.GetValidator(ctx, k)
		if err != nil || val.Name != k || val.Seq != i {
			t.Errorf("get validator %q: %+v, %v", k, val, err)
		}
		incs, err := s.ListIncidents(ctx, failover.ListOptions{Validator: k, OpenOnly: true})
		if err != nil || len(incs) != 1 || incs[0].ID != k+"-1" {
			t.Errorf("list incidents of validator %q: %v, %v", k, incs, err)
		}
		runs, err := s.ListSnapshotRuns(ctx, k)
		if err != nil || len(runs) != 1 || runs[0].ID != k+"/run" {
			t.Errorf("list snapshot runs of validator %q: %v, %v", k, runs, err)
		}
	}
	sites, err := s.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range sites {
		got = append(got, r.Name)
	}
	if len(got) != len(keys) {
		t.Errorf("list sites: %q, want the %d keys %q", got, len(keys), keys)
	}
	for _, r := range sites {
		if i := indexOf(keys, r.Name); i < 0 || r.HeartbeatsSeen != int64(i)+100 {
			t.Errorf("listed site %+v: not what was stored", r)
		}
	}
	if _, err := s.GetSite(ctx, "Basement  Site"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get of a similar key: got %v, want ErrNotFound", err)
	}
}

func indexOf(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return -1
}

// TestPrinterColumns checks that `kubectl get incidents` is useful: the CRD
// declares the columns and the server fills them from the record.
func TestPrinterColumns(t *testing.T) {
	ns := namespace(t)
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig(kubetest.Admin))
	if err != nil {
		t.Fatal(err)
	}
	crd, err := dyn.Resource(crdGVR).Get(t.Context(), "incidents."+Group, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("incidents CRD has %d versions, want 1", len(versions))
	}
	v := versions[0].(map[string]any)
	if _, ok := v["subresources"].(map[string]any)["status"]; !ok {
		t.Error("incidents CRD has no status subresource")
	}
	cols, _, _ := unstructured.NestedSlice(v, "additionalPrinterColumns")
	declared := map[string]string{}
	for _, c := range cols {
		m := c.(map[string]any)
		declared[m["name"].(string)] = m["jsonPath"].(string)
	}
	for name, path := range map[string]string{
		"Validator": ".spec.validator",
		"State":     ".spec.state",
		"Provider":  ".spec.standby.provider",
		"Standby":   ".spec.standby.name",
		"Age":       ".spec.createdAt",
	} {
		if declared[name] != path {
			t.Errorf("printer column %s: jsonPath %q, want %q", name, declared[name], path)
		}
	}

	// What kubectl shows: the server-side table.
	s := newStore(t, kubetest.Admin, ns)
	inc := failover.Incident{
		ID: "eth-1-3", Validator: "eth-1", State: failover.StateSyncing, Reason: "standby syncing",
		CreatedAt: time.Now().Add(-90 * time.Minute),
		Standby:   &failover.Standby{Provider: "gcp", Name: "failoverd-eth-1-3"},
	}
	if err := s.PutIncident(t.Context(), &inc); err != nil {
		t.Fatal(err)
	}
	body, err := s.client.Get().Namespace(ns).Resource("incidents").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("table has %d rows, want 1", len(table.Rows))
	}
	row := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		row[c.Name] = table.Rows[0].Cells[i]
	}
	for name, want := range map[string]any{
		"Name": "eth-1-3", "Validator": "eth-1", "State": "syncing",
		"Provider": "gcp", "Standby": "failoverd-eth-1-3", "Age": "90m",
	} {
		if row[name] != want {
			t.Errorf("column %s: %v, want %v (row %v)", name, row[name], want, row)
		}
	}
}

// TestForbidden: without RBAC the daemon gets the apiserver's Forbidden,
// wrapped, and never a missing record.
func TestForbidden(t *testing.T) {
	ns := namespace(t)
	s := newStore(t, kubetest.Failoverd, ns)
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s: no error", what)
		case errors.Is(err, failover.ErrNotFound), errors.Is(err, failover.ErrConflict):
			t.Errorf("%s: %v reads as a store outcome", what, err)
		case !apierrors.IsForbidden(err):
			t.Errorf("%s: %v, want Forbidden", what, err)
		case !strings.Contains(err.Error(), "failoverd needs get, list, create and update"):
			t.Errorf("%s: %v does not say what is needed", what, err)
		}
	}
	_, err := s.GetIncident(ctx, "eth-1-1")
	check("get", err)
	t.Logf("get as %s without RBAC: %v", kubetest.Failoverd, err)
	_, err = s.ListIncidents(ctx, failover.ListOptions{OpenOnly: true})
	check("list", err)
	check("create", s.PutValidator(ctx, &failover.ValidatorRecord{Name: "eth-1"}))
	check("update", s.PutSite(ctx, &failover.SiteRecord{Name: "home", Version: "123"}))
}

// TestMissingCRD: a 404 for a resource the server does not serve is not a
// missing record.
func TestMissingCRD(t *testing.T) {
	s := newStore(t, kubetest.Admin, namespace(t))
	missing := resource{plural: "notinstalleds", kind: "NotInstalled", noun: "thing"}
	_, err := get(t.Context(), s, missing, "x", siteKey, siteVersion)
	if err == nil || errors.Is(err, failover.ErrNotFound) || !strings.Contains(err.Error(), "CRD") {
		t.Errorf("get from a resource that is not served: %v, want an error naming the CRD, not ErrNotFound", err)
	}
	r := failover.SiteRecord{Name: "x", Version: "1"}
	err = put(t.Context(), s, missing, &r, nil, siteKey, siteVersion)
	if err == nil || errors.Is(err, failover.ErrNotFound) || !strings.Contains(err.Error(), "CRD") {
		t.Errorf("update in a resource that is not served: %v, want an error naming the CRD, not ErrNotFound", err)
	}
	t.Logf("get: %v", err)

	// A namespace that does not exist: reads find nothing, writes say so.
	gone := newStore(t, kubetest.Admin, "no-such-namespace")
	if _, err := gone.GetSite(t.Context(), "x"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get in a missing namespace: %v, want ErrNotFound", err)
	}
	err = gone.PutSite(t.Context(), &failover.SiteRecord{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "namespace no-such-namespace does not exist") {
		t.Errorf("create in a missing namespace: %v", err)
	}
}

// TestUnknownFieldsKept: the schema keeps fields this failoverd does not
// know (a newer one wrote them), and reading such a record works.
func TestUnknownFieldsKept(t *testing.T) {
	ns := namespace(t)
	s := newStore(t, kubetest.Admin, ns)
	obj := `{"apiVersion":"failoverd.io/v1alpha1","kind":"Incident","metadata":{"name":"eth-1-9"},
		"spec":{"id":"eth-1-9","validator":"eth-1","state":"ready","createdAt":"2026-11-21T10:04:05.123456789Z",
		"futureField":{"nested":[1,2.5,"x",null]},"standby":{"provider":"gcp","name":"n","futureToo":true},"history":null}}`
	if err := s.client.Post().Namespace(ns).Resource("incidents").Body([]byte(obj)).Do(t.Context()).Error(); err != nil {
		t.Fatal(err)
	}
	raw, err := s.client.Get().Namespace(ns).Resource("incidents").Name("eth-1-9").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"futureField":{"nested":[1,2.5,"x",null]}`, `"futureToo":true`, `"123456789Z"`} {
		if !strings.Contains(string(raw), want) && !strings.Contains(string(raw), strings.Trim(want, `"`)) {
			t.Errorf("stored object lost %s: %s", want, raw)
		}
	}
	inc, err := s.GetIncident(t.Context(), "eth-1-9")
	if err != nil {
		t.Fatal(err)
	}
	if inc.State != failover.StateReady || inc.CreatedAt.Nanosecond() != 123456789 || inc.Standby.Name != "n" {
		t.Errorf("read %+v", inc)
	}
	open, err := s.ListIncidents(t.Context(), failover.ListOptions{})
	if err != nil || len(open) != 1 {
		t.Errorf("list: %v, %v", open, err)
	}
}

// TestTwoReplicas: two stores on one namespace (two failoverd replicas)
// see each other's writes, and the compare-and-swap holds between them.
func TestTwoReplicas(t *testing.T) {
	ns := namespace(t)
	a, b := newStore(t, kubetest.Admin, ns), newStore(t, kubetest.Admin, ns)
	ctx := t.Context()
	v := failover.ValidatorRecord{Name: "eth-1", Site: "home"}
	if err := a.PutValidator(ctx, &v); err != nil {
		t.Fatal(err)
	}
	w := failover.ValidatorRecord{Name: "eth-1", Site: "away"}
	if err := b.PutValidator(ctx, &w); !errors.Is(err, failover.ErrConflict) {
		t.Errorf("second replica's create: %v, want ErrConflict", err)
	}
	got, err := b.GetValidator(ctx, "eth-1")
	if err != nil || got.Version != v.Version || got.Site != "home" {
		t.Fatalf("second replica reads %+v, %v; want %+v", got, err, v)
	}
	got.OpenIncident, got.Seq = "eth-1-1", 1
	if err := b.PutValidator(ctx, &got); err != nil {
		t.Fatal(err)
	}
	v.OpenIncident, v.Seq = "eth-1-1", 1
	if err := a.PutValidator(ctx, &v); !errors.Is(err, failover.ErrConflict) {
		t.Errorf("first replica's stale update: %v, want ErrConflict", err)
	}
}

func TestObjectName(t *testing.T) {
	for key, want := range map[string]string{
		"eth-1-3":                             "eth-1-3",
		"eth-1.hoodi":                         "eth-1.hoodi",
		"Basement Site":                       "basement-site--",
		"a--0123456789abcdef0123456789abcdef": "a-0123456789abcdef0123456789abcdef--",
		"☃":                                   "key--",
	} {
		got, err := ObjectName(key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, want) || (strings.HasSuffix(want, "--") != encodedSuffix.MatchString(got)) {
			t.Errorf("ObjectName(%q) = %q, want %q…", key, got, want)
		}
		if len(got) > 253 {
			t.Errorf("ObjectName(%q) is %d long", key, len(got))
		}
	}
	if _, err := ObjectName(""); err == nil {
		t.Error("ObjectName of the empty key succeeded")
	}
}
