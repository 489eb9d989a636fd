package release_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/kube/kubetest"
	"github.com/failoverd/failoverd/failover/kube/release"
)

// One API server for the package: each test uses its own namespace.
var (
	cluster    *kubetest.Cluster
	clusterErr error
)

func TestMain(m *testing.M) {
	cluster, clusterErr = kubetest.StartCluster("")
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// helmConfig is an action.Configuration for user, as the helm CLI builds it.
func helmConfig(t *testing.T, user, namespace, driver string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	kc := cluster.Kubeconfig(user)
	cache := t.TempDir()
	flags.KubeConfig, flags.Namespace, flags.CacheDir = &kc, &namespace, &cache
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, driver, t.Logf); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// install is `helm install NAME testdata/charts/CHART -n NS --set …` as the
// operator (admin) would run it.
func install(t *testing.T, namespace, name, chart, driver string, values map[string]any) {
	t.Helper()
	ch, err := loader.Load("testdata/charts/" + chart)
	if err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(helmConfig(t, kubetest.Admin, namespace, driver))
	in.ReleaseName, in.Namespace = name, namespace
	in.Timeout = 30 * time.Second
	if _, err := in.Run(ch, values); err != nil {
		t.Fatalf("helm install %s: %v", name, err)
	}
}

func upgrade(t *testing.T, namespace, name, chart string, values map[string]any) {
	t.Helper()
	ch, err := loader.Load("testdata/charts/" + chart)
	if err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(helmConfig(t, kubetest.Admin, namespace, release.DriverSecret))
	up.Namespace = namespace
	up.Timeout = 30 * time.Second
	up.ReuseValues = true
	if _, err := up.Run(name, ch, values); err != nil {
		t.Fatalf("helm upgrade %s: %v", name, err)
	}
}

func namespace(t *testing.T) string {
	t.Helper()
	kubetest.Need(t, clusterErr)
	ns := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(ns) > 50 {
		ns = ns[:50]
	}
	if err := cluster.CreateNamespace(ctxT(t), ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// The operator's home: geth and lighthouse from two releases with their own
// overrides; failoverd mirrors both (the operator's values, not the charts'
// defaults) and merges them into the validator's clients.
func TestMirrorHomeReleases(t *testing.T) {
	ns := namespace(t)
	install(t, ns, "home-geth", "geth", release.DriverSecret, map[string]any{
		"image": map[string]any{"tag": "v1.16.1"},
		"extraArgs": []any{
			"--hoodi", "--syncmode=snap", "--state.scheme=path", "--history.transactions=0",
			"--nat=extip:192.168.1.20", "--http.api=eth,net,web3",
		},
	})
	install(t, ns, "home-beacon", "lighthouse", release.DriverSecret, map[string]any{
		"image": map[string]any{"tag": "v7.1.0"},
		"extraArgs": []any{
			"--network=hoodi",
			"--execution-endpoint=http://home-geth." + ns + ".svc.cluster.local:8551",
			"--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io",
			"--target-peers 90",
			"--suggested-fee-recipient=0x00000000219ab540356cBB839Cbe05303d7705Fa",
		},
	})
	kc := cluster.Kubeconfig(kubetest.Admin)

	gv, gi, err := release.ReadValues(ctxT(t), kc, "", ns, "home-geth")
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := release.ChartInfo{Release: "home-geth", Namespace: ns, Revision: 1, Chart: "geth", Version: "1.2.3", AppVersion: "v1.15.11"}
	if *gi != wantInfo {
		t.Errorf("chart info %+v, want %+v", *gi, wantInfo)
	}
	// Chart defaults are included (AllValues), overrides win.
	if p, _ := release.Lookup(gv, "image.pullPolicy"); p != "IfNotPresent" {
		t.Errorf("image.pullPolicy = %v: chart defaults missing from the values", p)
	}
	gm, err := release.MappingFor(gi.Chart, gv)
	if err != nil {
		t.Fatal(err)
	}
	geth, err := release.Mirror(gv, gm)
	if err != nil {
		t.Fatal(err)
	}

	// A context naming the user works as well as the current one.
	bv, bi, err := release.ReadValues(ctxT(t), kc, kubetest.Admin, ns, "home-beacon")
	if err != nil {
		t.Fatal(err)
	}
	bm, err := release.MappingFor(bi.Chart, bv)
	if err != nil {
		t.Fatal(err)
	}
	beacon, err := release.Mirror(bv, bm)
	if err != nil {
		t.Fatal(err)
	}

	got, err := release.Merge(geth, beacon)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != "hoodi" {
		t.Errorf("network %q (%s), want hoodi", got.Network, got.NetworkFrom)
	}
	wantEL := release.Client{
		Name: "geth", Image: "ethereum/client-go", Version: "v1.16.1",
		Flags: []string{"--syncmode=snap", "--state.scheme=path", "--history.transactions=0"},
		Skipped: []release.Skipped{
			{Flag: "--nat=extip:192.168.1.20", Reason: "node-local or not known to carry over"},
			{Flag: "--http.api=eth,net,web3", Reason: "node-local or not known to carry over"},
		},
	}
	if !reflect.DeepEqual(got.Execution, wantEL) {
		t.Errorf("execution\n got %+v\nwant %+v", got.Execution, wantEL)
	}
	wantCL := release.Client{
		Name: "lighthouse", Image: "sigp/lighthouse", Version: "v7.1.0",
		Flags: []string{
			"--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io",
			"--target-peers=90",
			"--suggested-fee-recipient=0x00000000219ab540356cBB839Cbe05303d7705Fa",
		},
		Skipped: []release.Skipped{{Flag: "--execution-endpoint=http://home-geth." + ns + ".svc.cluster.local:8551", Reason: "node-local or not known to carry over"}},
	}
	if !reflect.DeepEqual(got.Consensus, wantCL) {
		t.Errorf("consensus\n got %+v\nwant %+v", got.Consensus, wantCL)
	}
	if len(got.Warnings) != 0 {
		t.Errorf("warnings: %v", got.Warnings)
	}
	wantCfg := config.Clients{
		Execution: config.Client{Name: "geth", Version: "v1.16.1", Image: "ethereum/client-go"},
		Consensus: config.Client{Name: "lighthouse", Version: "v7.1.0", Image: "sigp/lighthouse"},
	}
	if got.Config() != wantCfg {
		t.Errorf("config %+v, want %+v", got.Config(), wantCfg)
	}

	// An upgrade (helm upgrade --reuse-values --set image.tag=…) is what
	// the next read sees.
	upgrade(t, ns, "home-geth", "geth", map[string]any{"image": map[string]any{"tag": "v1.16.2"}})
	gv, gi, err = release.ReadValues(ctxT(t), kc, "", ns, "home-geth")
	if err != nil {
		t.Fatal(err)
	}
	geth, err = release.Mirror(gv, gm)
	if err != nil {
		t.Fatal(err)
	}
	if gi.Revision != 2 || geth.Execution.Version != "v1.16.2" || geth.Network != "hoodi" {
		t.Errorf("after upgrade: revision %d, version %q, network %q; want 2, v1.16.2, hoodi", gi.Revision, geth.Execution.Version, geth.Network)
	}
}

// Only chart defaults: geth's floating default is flagged, the network is
// the clients' default, mainnet.
func TestMirrorChartDefaults(t *testing.T) {
	ns := namespace(t)
	install(t, ns, "plain", "geth", release.DriverSecret, map[string]any{"image": map[string]any{"tag": "stable"}})
	v, info, err := release.ReadValues(ctxT(t), cluster.Kubeconfig(kubetest.Admin), "", ns, "plain")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := release.DefaultMapping(info.Chart)
	got, err := release.Mirror(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != "mainnet" || !strings.HasPrefix(got.NetworkFrom, "default") {
		t.Errorf("network %q from %q, want mainnet by default", got.Network, got.NetworkFrom)
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], `"stable" is floating`) {
		t.Errorf("warnings %q, want one about the floating tag", got.Warnings)
	}
}

func TestReadValuesMissingRelease(t *testing.T) {
	ns := namespace(t)
	_, _, err := release.ReadValues(ctxT(t), cluster.Kubeconfig(kubetest.Admin), "", ns, "nope")
	if !errors.Is(err, release.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	t.Log(err)
	for _, want := range []string{`"nope"`, `"` + ns + `"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestReadValuesCancelled(t *testing.T) {
	kubetest.Need(t, clusterErr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := release.ReadValues(ctx, cluster.Kubeconfig(kubetest.Admin), "", "default", "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// grant binds a Role with rules to user in namespace.
func grant(t *testing.T, namespace, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	cs, err := cluster.Clientset(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	name := "test-" + user
	if _, err := cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer sees new bindings through a watch: wait until it does.
	r := rules[0]
	for {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: namespace, Group: r.APIGroups[0], Resource: r.Resources[0], Verb: r.Verbs[0],
			},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("grant to %s not effective: %v", user, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Helm's default driver keeps releases in Secrets. failoverd's identity may
// not read Secrets (DESIGN.md), so it cannot read the release: the error
// says why instead of a bare "forbidden".
func TestReadValuesForbiddenWithoutSecretRead(t *testing.T) {
	ns := namespace(t)
	install(t, ns, "home-geth", "geth", release.DriverSecret, map[string]any{"extraArgs": []any{"--hoodi"}})
	// failoverd gets what the daemon plausibly has (read workloads and
	// ConfigMaps), never Secrets; reader gets nothing at all.
	grant(t, ns, kubetest.Failoverd,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps", "pods"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "watch"}},
	)
	for _, user := range []string{kubetest.Failoverd, kubetest.Reader} {
		t.Run(user, func(t *testing.T) {
			_, _, err := release.ReadValues(ctxT(t), cluster.Kubeconfig(user), "", ns, "home-geth")
			if !errors.Is(err, release.ErrForbidden) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			t.Log(err)
			for _, want := range []string{"Secrets", `"home-geth"`, ns, user} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
		})
	}
}

// The way out that keeps "failoverd never reads Secrets": a release stored
// with helm's configmap driver (HELM_DRIVER=configmap) is readable with
// ConfigMap access alone.
func TestReadValuesConfigMapDriver(t *testing.T) {
	ns := namespace(t)
	install(t, ns, "home-beacon", "lighthouse", release.DriverConfigMap, map[string]any{
		"image":     map[string]any{"tag": "v7.1.0"},
		"extraArgs": []any{"--network=sepolia"},
	})
	grant(t, ns, kubetest.Failoverd,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}})

	src := release.Source{Kubeconfig: cluster.Kubeconfig(kubetest.Failoverd), Namespace: ns, Release: "home-beacon", Driver: release.DriverConfigMap}
	v, info, err := release.Read(ctxT(t), src)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := release.DefaultMapping(info.Chart)
	got, err := release.Mirror(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Consensus.Version != "v7.1.0" || got.Network != "sepolia" {
		t.Errorf("got %s %s on %s, want v7.1.0 on sepolia", got.Consensus.Name, got.Consensus.Version, got.Network)
	}

	// Looking for it with the default driver finds nothing — and for this
	// user, is refused.
	src.Driver = ""
	if _, _, err := release.Read(ctxT(t), src); !errors.Is(err, release.ErrForbidden) {
		t.Errorf("secret driver as failoverd: %v, want ErrForbidden", err)
	}
	src.Kubeconfig = cluster.Kubeconfig(kubetest.Admin)
	if _, _, err := release.Read(ctxT(t), src); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("secret driver as admin: %v, want ErrNotFound", err)
	}
}

func TestReadValuesNotDeployed(t *testing.T) {
	ns := namespace(t)
	install(t, ns, "gone", "geth", release.DriverSecret, nil)
	un := action.NewUninstall(helmConfig(t, kubetest.Admin, ns, release.DriverSecret))
	un.KeepHistory = true
	if _, err := un.Run("gone"); err != nil {
		t.Fatal(err)
	}
	_, _, err := release.ReadValues(ctxT(t), cluster.Kubeconfig(kubetest.Admin), "", ns, "gone")
	if !errors.Is(err, release.ErrNotDeployed) || !strings.Contains(err.Error(), "uninstalled") {
		t.Fatalf("err = %v, want ErrNotDeployed naming the uninstalled revision", err)
	}
	t.Log(err)
}

func ExampleMirror() {
	values := map[string]any{
		"image":     map[string]any{"repository": "sigp/lighthouse", "tag": "v7.1.0"},
		"extraArgs": []any{"--network=hoodi", "--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io"},
	}
	m, _ := release.DefaultMapping("lighthouse")
	c, err := release.Mirror(values, m)
	fmt.Println(c.Consensus.Image, c.Consensus.Version, c.Network, c.Consensus.Flags, err)
	// Output: sigp/lighthouse v7.1.0 hoodi [--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io] <nil>
}
