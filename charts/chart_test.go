// Package charts_test checks the helm chart in charts/failoverd with the real
// helm (lint, template golden files, the values schema) and installs it on a
// real kube-apiserver (failover/kube/kubetest): every rendered object is
// validated server-side, and the daemon's RBAC is checked with real requests
// under its ServiceAccount's own token.
//
// helm (and promtool, for the validator rules the chart renders from
// alerts/) come from $FAILOVERD_TOOLS_BIN (tools/build.sh builds the pinned
// versions there), the default tools cache, or PATH. Without them the tests
// skip, unless FAILOVERD_E2E_REQUIRED is set.
//
//	FAILOVERD_TOOLS_BIN=$(tools/build.sh) go test ./charts/...
//	go test ./charts/ -run Golden -update   # rewrite testdata/golden
package charts_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover/kube/kubetest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current chart")

const (
	chartDir   = "failoverd"
	fullValues = "testdata/values-full.yaml"
	release    = "failoverd"
	releaseNS  = "failoverd"
)

// helmBin finds helm or skips (fails under FAILOVERD_E2E_REQUIRED).
func helmBin(t *testing.T) string {
	t.Helper()
	return toolBin(t, "helm")
}

// toolBin finds one of the pinned tools (tools/build.sh) in
// $FAILOVERD_TOOLS_BIN, the default tools cache, or PATH; or skips (fails
// under FAILOVERD_E2E_REQUIRED).
func toolBin(t *testing.T, name string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("FAILOVERD_TOOLS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("FAILOVERD_TOOLS_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	} else if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "failoverd", "tools", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not installed: build it with `make tools` and set FAILOVERD_TOOLS_BIN=$(tools/build.sh)"
	if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// helm runs helm with a private home (no user repositories or plugins) and
// returns stdout; stderr goes into the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := helmBin(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

func TestLint(t *testing.T) {
	for _, tc := range []struct{ name, values string }{{"default", ""}, {"full", fullValues}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir, "--namespace", releaseNS}
			if tc.values != "" {
				args = append(args, "-f", tc.values)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

func render(t *testing.T, values string, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", releaseNS}
	if values != "" {
		args = append(args, "-f", values)
	}
	return helm(t, append(args, extra...)...)
}

func TestTemplateGolden(t *testing.T) {
	for _, tc := range []struct{ name, values string }{{"default", ""}, {"full", fullValues}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(t, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("helm template differs from %s (run with -update after checking the change):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

// firstDiff shows the first differing line with some context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %q\n  got:  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// TestRenderedInvariants checks what must hold for any values, on the full render.
func TestRenderedInvariants(t *testing.T) {
	for _, values := range []string{"", fullValues} {
		out, err := render(t, values)
		if err != nil {
			t.Fatal(err)
		}
		objs := decodeAll(t, out)
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetKind()]++
			if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
				rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
				for _, r := range rules {
					res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
					for _, x := range res {
						if x == "secrets" || x == "*" || strings.HasPrefix(x, "secrets/") {
							t.Errorf("%s %s/%s grants %q", o.GetKind(), o.GetNamespace(), o.GetName(), x)
						}
					}
					verbs, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "verbs")
					for _, v := range verbs {
						if v == "*" {
							t.Errorf("%s %s/%s grants every verb", o.GetKind(), o.GetNamespace(), o.GetName())
						}
					}
				}
			}
			if o.GetKind() == "Deployment" {
				c, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				sc := c[0].(map[string]any)["securityContext"].(map[string]any)
				if sc["readOnlyRootFilesystem"] != true || sc["runAsNonRoot"] != true || sc["allowPrivilegeEscalation"] != false {
					t.Errorf("container securityContext %v", sc)
				}
			}
		}
		for _, k := range []string{"Deployment", "Service", "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "ClusterRole", "PodDisruptionBudget"} {
			if kinds[k] == 0 {
				t.Errorf("values %q: no %s rendered", values, k)
			}
		}
	}
}

// TestRenderedConfigValid: the config the chart renders is one failoverd
// accepts (`failoverd config validate`, the binary in $FAILOVERD_BIN).
func TestRenderedConfigValid(t *testing.T) {
	bin := os.Getenv("FAILOVERD_BIN")
	if bin == "" {
		if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
			t.Fatal("FAILOVERD_BIN is not set (make test sets it)")
		}
		t.Skip("FAILOVERD_BIN is not set: build bin/failoverd and set FAILOVERD_BIN to check the rendered config")
	}
	for _, values := range []string{"", fullValues} {
		out, err := render(t, values, "--show-only", "templates/configmap.yaml")
		if err != nil {
			t.Fatal(err)
		}
		objs := decodeAll(t, out)
		cfg, _, _ := unstructured.NestedString(objs[0].Object, "data", "config.yaml")
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "config", "validate", "--config", file)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no FAILOVERD_* from the test's environment
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("values %q: failoverd refuses the rendered config: %v\n%s\n%s", values, err, b, cfg)
		}
	}
}

// alertsDir holds the validator rules the chart renders from its copy in
// charts/failoverd/rules (alerts/alerts_test.go keeps the copy identical).
const alertsDir = "../alerts"

// TestValidatorRulesRendered: with validatorRules.enabled the chart renders
// every group of alerts/*.rules.yaml, unchanged, as one PrometheusRule that
// kube-prometheus-stack selects; and the rendered rules pass promtool's
// check and the same unit tests as alerts/ (promtool from the tools cache or
// PATH, as helm).
func TestValidatorRulesRendered(t *testing.T) {
	out, err := render(t, fullValues, "--show-only", "templates/prometheusrule-validators.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeAll(t, out)
	if len(objs) != 1 || objs[0].GetKind() != "PrometheusRule" {
		t.Fatalf("want one PrometheusRule, got:\n%s", out)
	}
	pr := objs[0]
	if l := pr.GetLabels(); l["release"] != "kps" || l["extra"] != "yes" {
		t.Errorf("labels %v: want release=kps (monitoring.release) and the extra label", l)
	}
	got, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")

	paths, _ := filepath.Glob(filepath.Join(alertsDir, "*.rules.yaml"))
	if len(paths) == 0 {
		t.Fatal("no alerts/*.rules.yaml")
	}
	var want []any
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Groups []any `json:"groups"`
		}
		if err := yaml.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want = append(want, f.Groups...)
	}
	// Compare as JSON values: the decoders differ in number types only.
	norm := func(v any) any {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := yaml.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		gb, _ := yaml.Marshal(got)
		wb, _ := yaml.Marshal(want)
		t.Fatalf("rendered groups differ from alerts/*.rules.yaml (run alerts/sync-chart.sh):\n%s", firstDiff(string(wb), string(gb)))
	}

	if out, err := render(t, "", "--show-only", "templates/prometheusrule-validators.yaml"); err == nil {
		t.Errorf("validatorRules is off by default, yet rendered:\n%s", out)
	}

	promtool := toolBin(t, "promtool")
	dir := t.TempDir()
	rendered := filepath.Join(dir, "rendered.rules.yaml")
	b, err := yaml.Marshal(map[string]any{"groups": got})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rendered, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rendered).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the rendered PrometheusRule: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob(filepath.Join(alertsDir, "tests", "*.test.yaml"))
	if len(tests) == 0 {
		t.Fatal("no alerts/tests/*.test.yaml")
	}
	for _, tf := range tests {
		b, err := os.ReadFile(tf)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", tf, err)
		}
		m["rule_files"] = []string{rendered}
		b, err = yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, filepath.Base(tf))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "test", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("%s against the rendered PrometheusRule: %v\n%s", filepath.Base(tf), err, out)
		}
	}
}

// TestSchemaRefuses: values.schema.json is strict.
func TestSchemaRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"unknown key", []string{"--set", "replicas=3"}, "replicas"},
		{"chart-owned config key", []string{"--set", "config.listen=127.0.0.1:1"}, "/config/listen"},
		{"store type", []string{"--set", "config.store.type=bolt"}, "/config/store"},
		{"tokens in config", []string{"--set", "config.auth.disabled=true"}, "/config/auth"},
		{"fencing kind", []string{"--set", "fencing.workloads[0].namespace=a", "--set", "fencing.workloads[0].name=b", "--set", "fencing.workloads[0].kind=Pod"}, "kind"},
		{"fencing without name", []string{"--set", "fencing.workloads[0].namespace=a", "--set", "fencing.workloads[0].kind=StatefulSet"}, "name"},
		{"anti-affinity", []string{"--set", "podAntiAffinity=sometimes"}, "podAntiAffinity"},
		{"no webhook secret", []string{"--set", "auth.webhookToken.existingSecret="}, "existingSecret"},
		{"validatorRules typo", []string{"--set", "validatorRules.enable=true"}, "enable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, "", tc.set...)
			if err == nil {
				t.Fatalf("rendered with %v", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}

func decodeAll(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func readObjects(t *testing.T, paths ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeAll(t, string(b))...)
	}
	return objs
}

// failoverd's own CRDs: the chart's (charts/failoverd/crds) when they are
// there, else placeholders with the same names.
func failoverdCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(paths) > 0 {
		return readObjects(t, paths...)
	}
	t.Log("charts/failoverd/crds is empty: using placeholder failoverd.io CRDs")
	var objs []*unstructured.Unstructured
	for _, kind := range []string{"Incident", "ValidatorState", "SiteState", "SnapshotRun"} {
		plural := strings.ToLower(kind) + "s"
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": plural + ".failoverd.io"},
			"spec": map[string]any{
				"group": "failoverd.io",
				"scope": "Namespaced",
				"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"},
				"versions": []any{map[string]any{
					"name": "v1alpha1", "served": true, "storage": true,
					"subresources": map[string]any{"status": map[string]any{}},
					"schema": map[string]any{"openAPIV3Schema": map[string]any{
						"type": "object", "x-kubernetes-preserve-unknown-fields": true,
					}},
				}},
			},
		}})
	}
	return objs
}

type cluster struct {
	c      *kubetest.Cluster
	admin  *kubernetes.Clientset
	dyn    *dynamic.DynamicClient
	mapper meta.RESTMapper
	disc   discovery.CachedDiscoveryInterface
}

func (k *cluster) resource(t *testing.T, o *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return k.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	return k.dyn.Resource(m.Resource)
}

// apply creates objects as admin (dryRun: server-side validation only) with
// strict field validation: an unknown or misspelt field is an error.
func (k *cluster) apply(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range objs {
		if _, err := k.resource(t, o).Create(ctx, o, opts); err != nil && !(apierrors.IsAlreadyExists(err) && !dryRun) {
			t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// waitFor polls until every CRD's resource is served.
func (k *cluster) waitForCRDs(t *testing.T, crds []*unstructured.Unstructured) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, crd := range crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		version := versions[0].(map[string]any)["name"].(string)
		gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
		for {
			_, err := k.dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not served: %v", gvr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	k.disc.Invalidate()
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(k.disc)
}

// TestInstall: server-side dry-run of every object, a real helm install, and
// the daemon's and an approver's permissions checked with real requests.
func TestInstall(t *testing.T) {
	helmBin(t)
	kc := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	k := &cluster{c: kc}
	var err error
	if k.admin, err = kc.Clientset(kubetest.Admin); err != nil {
		t.Fatal(err)
	}
	if k.dyn, err = dynamic.NewForConfig(kc.RESTConfig(kubetest.Admin)); err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(kc.RESTConfig(kubetest.Admin))
	if err != nil {
		t.Fatal(err)
	}
	k.disc = memory.NewMemCacheClient(dc)
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(k.disc)

	// The namespaces the full values name.
	for _, ns := range []string{releaseNS, "eth-mainnet-1", "bera-mainnet-1", "kube-prometheus", "elsewhere"} {
		if err := kc.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	crds := append(failoverdCRDs(t), readObjects(t, "testdata/monitoring-crds.yaml")...)
	k.apply(ctx, t, crds, false)
	k.waitForCRDs(t, crds)

	kubeconfig := kc.Kubeconfig(kubetest.Admin)
	for _, values := range []string{"", fullValues} {
		// helm's own server-side dry-run (validated against the server's schemas) ...
		args := []string{"install", release, chartDir, "--namespace", releaseNS, "--kubeconfig", kubeconfig, "--dry-run=server", "--skip-crds"}
		if values != "" {
			args = append(args, "-f", values)
		}
		if out, err := helm(t, args...); err != nil {
			t.Fatalf("values %q: %v", values, err)
		} else if !strings.Contains(out, "STATUS: pending-install") {
			t.Fatalf("helm install --dry-run=server:\n%s", out)
		}
		// ... and every rendered object created with dryRun=All and strict
		// field validation, through admission and the CRD schemas.
		out, err := render(t, values)
		if err != nil {
			t.Fatal(err)
		}
		objs := decodeAll(t, out)
		for _, o := range objs {
			if o.GetNamespace() == "" && o.GetKind() != "ClusterRole" {
				t.Errorf("%s %s has no namespace", o.GetKind(), o.GetName())
			}
		}
		k.apply(ctx, t, objs, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	out, err := helm(t, "install", release, chartDir, "--namespace", releaseNS, "--kubeconfig", kubeconfig, "--skip-crds", "-f", fullValues)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install:\n%s", out)

	t.Run("daemon", func(t *testing.T) { checkDaemon(ctx, t, k) })
	t.Run("approver", func(t *testing.T) { checkApprover(ctx, t, k) })
}

var (
	incidentsGVR = schema.GroupVersionResource{Group: "failoverd.io", Version: "v1alpha1", Resource: "incidents"}
	secretsTried = []string{releaseNS, "eth-mainnet-1", "elsewhere"}
)

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: want Forbidden, got %v", what, err)
	}
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want allowed, got %v", what, err)
	}
}

// daemonConfig is a client with a token the API server issued to the chart's
// ServiceAccount (TokenRequest): the daemon's identity, exactly.
func daemonConfig(ctx context.Context, t *testing.T, k *cluster) *rest.Config {
	t.Helper()
	exp := int64(3600)
	tr, err := k.admin.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, "failoverd-daemon",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for the chart's ServiceAccount: %v", err)
	}
	return k.c.RESTConfigForToken(tr.Status.Token)
}

func checkDaemon(ctx context.Context, t *testing.T, k *cluster) {
	cfg := daemonConfig(ctx, t, k)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)

	// Secrets exist, and are out of reach, its own token Secrets included.
	if _, err := k.admin.CoreV1().Secrets(releaseNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "fo-webhook"}, StringData: map[string]string{"webhook-token": "x"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range secretsTried {
		_, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		wantForbidden(t, "list secrets in "+ns, err)
	}
	_, err := cs.CoreV1().Secrets(releaseNS).Get(ctx, "fo-webhook", metav1.GetOptions{})
	wantForbidden(t, "get its own webhook token Secret", err)
	_, err = cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list secrets cluster-wide", err)
	_, err = cs.CoreV1().Secrets(releaseNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{})
	wantForbidden(t, "create a secret", err)

	// Fencing: the listed workloads' /scale, and nothing else.
	replicas := int32(1)
	sts := func(ns, name string) {
		t.Helper()
		labels := map[string]string{"app": name}
		_, err := k.admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{
				Replicas: &replicas, ServiceName: name,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "vc", Image: "example.org/vc:1"}}},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	sts("eth-mainnet-1", "lighthouse-validator") // listed
	sts("eth-mainnet-1", "geth")                 // same namespace, not listed
	sts("elsewhere", "lighthouse-validator")     // same name, namespace not listed

	scaleTo0 := func(ns, name string) error {
		s, err := cs.AppsV1().StatefulSets(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = 0
		_, err = cs.AppsV1().StatefulSets(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	}
	wantAllowed(t, "scale the listed StatefulSet eth-mainnet-1/lighthouse-validator to 0", scaleTo0("eth-mainnet-1", "lighthouse-validator"))
	if got, err := k.admin.AppsV1().StatefulSets("eth-mainnet-1").Get(ctx, "lighthouse-validator", metav1.GetOptions{}); err != nil || *got.Spec.Replicas != 0 {
		t.Errorf("after scaling: %v, %v", got.Spec.Replicas, err)
	}
	_, err = cs.AppsV1().StatefulSets("eth-mainnet-1").Patch(ctx, "lighthouse-validator", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}, "scale")
	wantAllowed(t, "patch the listed StatefulSet's scale", err)
	wantForbidden(t, "scale the non-listed eth-mainnet-1/geth", scaleTo0("eth-mainnet-1", "geth"))
	_, err = cs.AppsV1().StatefulSets("eth-mainnet-1").UpdateScale(ctx, "geth",
		&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "geth", Namespace: "eth-mainnet-1"}}, metav1.UpdateOptions{})
	wantForbidden(t, "update the scale of the non-listed eth-mainnet-1/geth", err)
	wantForbidden(t, "scale elsewhere/lighthouse-validator", scaleTo0("elsewhere", "lighthouse-validator"))
	_, err = cs.AppsV1().StatefulSets("eth-mainnet-1").Get(ctx, "lighthouse-validator", metav1.GetOptions{})
	wantForbidden(t, "get the listed StatefulSet itself (only /scale)", err)
	_, err = cs.AppsV1().StatefulSets("eth-mainnet-1").Patch(ctx, "lighthouse-validator", "application/merge-patch+json",
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"vc","image":"evil"}]}}}}`), metav1.PatchOptions{})
	wantForbidden(t, "patch the listed StatefulSet's pod template", err)
	err = cs.AppsV1().StatefulSets("eth-mainnet-1").Delete(ctx, "lighthouse-validator", metav1.DeleteOptions{})
	wantForbidden(t, "delete the listed StatefulSet", err)
	_, err = cs.AppsV1().Deployments("eth-mainnet-1").GetScale(ctx, "vc-sidecar", metav1.GetOptions{})
	if apierrors.IsForbidden(err) {
		t.Errorf("get the listed Deployment's scale: %v", err)
	} // NotFound is fine: the Deployment does not exist, the permission does.
	_, err = cs.CoreV1().Pods("eth-mainnet-1").List(ctx, metav1.ListOptions{LabelSelector: "app=lighthouse-validator"})
	wantAllowed(t, "list pods in a fenced namespace", err)
	_, err = cs.CoreV1().Pods("elsewhere").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list pods in a namespace without fenced workloads", err)
	_, err = cs.CoreV1().Pods("eth-mainnet-1").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	wantForbidden(t, "create a pod in a fenced namespace", err)
	_, err = cs.AppsV1().StatefulSets("eth-mainnet-1").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list StatefulSets in a fenced namespace", err)

	// Its state: incidents (and status).
	inc := dyn.Resource(incidentsGVR).Namespace(releaseNS)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "failoverd.io/v1alpha1", "kind": "Incident",
		"metadata": map[string]any{"name": "eth-mainnet-1-1"},
		"spec":     map[string]any{"id": "eth-mainnet-1-1", "validator": "eth-mainnet-1", "state": "confirming"},
	}}
	created, err := inc.Create(ctx, obj, metav1.CreateOptions{})
	wantAllowed(t, "create an Incident", err)
	if err == nil {
		_ = unstructured.SetNestedField(created.Object, "provisioning", "spec", "state")
		updated, err := inc.Update(ctx, created, metav1.UpdateOptions{})
		wantAllowed(t, "update an Incident", err)
		if err == nil {
			_ = unstructured.SetNestedField(updated.Object, map[string]any{"note": "x"}, "status")
			_, err = inc.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
			wantAllowed(t, "update an Incident's status", err)
		}
		_, err = inc.List(ctx, metav1.ListOptions{})
		wantAllowed(t, "list Incidents", err)
		wantAllowed(t, "delete an Incident", inc.Delete(ctx, "eth-mainnet-1-1", metav1.DeleteOptions{}))
	}
	for _, r := range []string{"validatorstates", "sitestates", "snapshotruns"} {
		_, err := dyn.Resource(schema.GroupVersionResource{Group: "failoverd.io", Version: "v1alpha1", Resource: r}).Namespace(releaseNS).List(ctx, metav1.ListOptions{})
		wantAllowed(t, "list "+r, err)
	}
	_, err = dyn.Resource(incidentsGVR).Namespace("elsewhere").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list Incidents outside its namespace", err)

	// Leader election on its one Lease.
	leases := cs.CoordinationV1().Leases(releaseNS)
	holder := "failoverd-0"
	lease, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "failoverd-leader"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{})
	wantAllowed(t, "create the leader Lease", err)
	if err == nil {
		_, err = leases.Get(ctx, "failoverd-leader", metav1.GetOptions{})
		wantAllowed(t, "get the leader Lease", err)
		other := "failoverd-1"
		lease.Spec.HolderIdentity = &other
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		wantAllowed(t, "update the leader Lease", err)
	}
	if _, err := k.admin.CoordinationV1().Leases(releaseNS).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = leases.Get(ctx, "someone-else", metav1.GetOptions{})
	wantForbidden(t, "get another Lease", err)
	_, err = leases.Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"}}, metav1.UpdateOptions{})
	wantForbidden(t, "update another Lease", err)

	// Events.
	_, err = cs.CoreV1().Events(releaseNS).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "failoverd.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Lease", Namespace: releaseNS, Name: "failoverd-leader"},
		Reason:         "LeaderElection", Message: "failoverd-0 became leader", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	wantAllowed(t, "create an Event", err)

	// Whatever the verb, no Secret (the authorizer's own answer, cluster-wide).
	for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
		for _, ns := range append(secretsTried, "") {
			if allowed := canI(ctx, t, cs, verb, "", "secrets", "", ns); allowed {
				t.Errorf("the daemon may %s secrets in %q", verb, ns)
			}
		}
	}
}

// canI asks the API server whether the client's own identity may do this.
func canI(ctx context.Context, t *testing.T, cs kubernetes.Interface, verb, group, resource, sub, ns string) bool {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
		Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview: %v", err)
	}
	return r.Status.Allowed
}

// impersonate is the admin acting as user, in groups.
func impersonate(k *cluster, user string, groups ...string) *rest.Config {
	cfg := rest.CopyConfig(k.c.RESTConfig(kubetest.Admin))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	return cfg
}

func checkApprover(ctx context.Context, t *testing.T, k *cluster) {
	// An Incident to look at, written as admin.
	inc := k.dyn.Resource(incidentsGVR).Namespace(releaseNS)
	if _, err := inc.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "failoverd.io/v1alpha1", "kind": "Incident",
		"metadata": map[string]any{"name": "eth-mainnet-1-2"},
		"spec":     map[string]any{"id": "eth-mainnet-1-2", "validator": "eth-mainnet-1", "state": "ready"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := impersonate(k, "alice", "staking-approvers") // approvers.group in the full values
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ai := dyn.Resource(incidentsGVR).Namespace(releaseNS)

	list, err := ai.List(ctx, metav1.ListOptions{})
	wantAllowed(t, "approver lists incidents", err)
	if err == nil && len(list.Items) == 0 {
		t.Error("approver sees no incident")
	}
	got, err := ai.Get(ctx, "eth-mainnet-1-2", metav1.GetOptions{})
	wantAllowed(t, "approver gets an incident", err)
	if err == nil {
		_ = unstructured.SetNestedField(got.Object, "migrating", "spec", "state")
		_, err = ai.Update(ctx, got, metav1.UpdateOptions{})
		wantForbidden(t, "approver updates an incident", err)
		_, err = ai.UpdateStatus(ctx, got, metav1.UpdateOptions{})
		wantForbidden(t, "approver updates an incident's status", err)
	}
	_, err = ai.Patch(ctx, "eth-mainnet-1-2", "application/merge-patch+json", []byte(`{"spec":{"state":"migrating"}}`), metav1.PatchOptions{})
	wantForbidden(t, "approver patches an incident", err)
	wantForbidden(t, "approver deletes an incident", ai.Delete(ctx, "eth-mainnet-1-2", metav1.DeleteOptions{}))
	_, err = ai.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "failoverd.io/v1alpha1", "kind": "Incident",
		"metadata": map[string]any{"name": "forged"}, "spec": map[string]any{"id": "forged"},
	}}, metav1.CreateOptions{})
	wantForbidden(t, "approver creates an incident", err)
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "failoverd.io", Version: "v1alpha1", Resource: "snapshotruns"}).Namespace(releaseNS).List(ctx, metav1.ListOptions{})
	wantAllowed(t, "approver lists snapshot runs", err)
	for _, ns := range secretsTried {
		_, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		wantForbidden(t, "approver lists secrets in "+ns, err)
	}
	_, err = cs.CoreV1().Secrets(releaseNS).Get(ctx, "fo-webhook", metav1.GetOptions{})
	wantForbidden(t, "approver reads the webhook token", err)
	_, err = cs.CoordinationV1().Leases(releaseNS).Get(ctx, "failoverd-leader", metav1.GetOptions{})
	wantForbidden(t, "approver reads the Lease", err)
	_, err = dyn.Resource(incidentsGVR).Namespace("elsewhere").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "approver lists incidents outside failoverd's namespace", err)

	// Reaching the API: port-forward to failoverd's pods, in its namespace only
	// (there is no kubelet to forward to; the authorizer answers).
	if !canI(ctx, t, cs, "create", "", "pods", "portforward", releaseNS) {
		t.Error("approver may not port-forward in failoverd's namespace")
	}
	if canI(ctx, t, cs, "create", "", "pods", "portforward", "eth-mainnet-1") {
		t.Error("approver may port-forward to validator pods")
	}
	if canI(ctx, t, cs, "create", "", "pods", "exec", releaseNS) {
		t.Error("approver may exec into failoverd's pods")
	}

	// Someone outside the group sees nothing.
	other := dynamic.NewForConfigOrDie(impersonate(k, "mallory", "staking-viewers"))
	_, err = other.Resource(incidentsGVR).Namespace(releaseNS).List(ctx, metav1.ListOptions{})
	wantForbidden(t, "a non-approver lists incidents", err)
}
