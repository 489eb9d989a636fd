package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover/kube/kubetest"
	"github.com/failoverd/failoverd/failover/kube/release"
)

// The example charts of the release package (ethpandaops' geth and
// lighthouse layouts).
const chartsDir = "../../failover/kube/release/testdata/charts"

// helmInstall is `helm install NAME CHART -n NS --set …` as the operator
// (admin) runs it, with the helm SDK.
func helmInstall(t *testing.T, c *kubetest.Cluster, namespace, name, chart, driver string, values map[string]any) {
	t.Helper()
	ch, err := loader.Load(filepath.Join(chartsDir, chart))
	if err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	kc, cache := c.Kubeconfig(kubetest.Admin), t.TempDir()
	flags.KubeConfig, flags.Namespace, flags.CacheDir = &kc, &namespace, &cache
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, driver, t.Logf); err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.Timeout = name, namespace, 30*time.Second
	if _, err := in.Run(ch, values); err != nil {
		t.Fatalf("helm install %s: %v", name, err)
	}
}

// mirrorConfig is examples/local.yaml with a hoodi validator whose clients
// the config has at other versions than the home release runs.
func mirrorConfig(t *testing.T) string {
	t.Helper()
	doc := readTestYAML(t, localConfig)
	doc["fleet"] = append(doc["fleet"].([]any), map[string]any{
		"name": "eth-hoodi-1", "chain": "ethereum", "network": "hoodi",
		"clients": map[string]any{
			"execution": map[string]any{"name": "geth", "version": "v1.16.7"},
			"consensus": map[string]any{"name": "lighthouse", "version": "v8.0.1"},
		},
	})
	return writeTestYAML(t, "config.yaml", doc)
}

func readTestYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func writeTestYAML(t *testing.T, name string, doc any) string {
	t.Helper()
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs the program in-process, as main does.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, environ{}.get, &out, &errOut)
	return out.String(), errOut.String(), err
}

// The operator's home runs geth and lighthouse on hoodi from two helm
// releases with their own image tags; `bootstrap render --from-release`
// mirrors them onto the standby with the operator's kubeconfig.
func TestMirrorHomeRelease(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ns = "ethereum"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	helmInstall(t, c, ns, "home-geth", "geth", release.DriverSecret, map[string]any{
		"image": map[string]any{"tag": "v1.16.1"},
		"extraArgs": []any{
			"--hoodi", "--syncmode=snap", "--state.scheme=path", "--nat=extip:192.168.1.20",
		},
	})
	helmInstall(t, c, ns, "home-beacon", "lighthouse", release.DriverSecret, map[string]any{
		"image": map[string]any{"tag": "v7.1.0"},
		"extraArgs": []any{
			"--network=hoodi",
			"--execution-endpoint=http://home-geth.ethereum.svc.cluster.local:8551",
			"--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io",
			"--target-peers 90",
		},
	})
	cfgFile := mirrorConfig(t)
	admin := c.Kubeconfig(kubetest.Admin)
	from := []string{"--from-release", ns + "/home-geth,home-beacon", "--kubeconfig", admin}
	render := func(validator string, extra ...string) (string, string, error) {
		return runCLI(t, append([]string{"bootstrap", "render", "--config", cfgFile, "--validator", validator}, extra...)...)
	}

	t.Run("render", func(t *testing.T) {
		out, stderr, err := render("eth-hoodi-1", from...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		t.Log(stderr)
		for _, want := range []string{
			"validator eth-hoodi-1, ethereum/hoodi",
			"--entrypoint geth ethereum/client-go:v1.16.1",
			"--entrypoint lighthouse sigp/lighthouse:v7.1.0",
			"--hoodi",
			"--network hoodi",
			// Carried from home.
			"--syncmode=snap", "--state.scheme=path", "--target-peers=90",
			"--checkpoint-sync-url https://checkpoint-sync.hoodi.ethpandaops.io",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("bootstrap has no %q", want)
			}
		}
		for _, bad := range []string{"v1.16.7", "v8.0.1", "--nat=", "svc.cluster.local", "mainnet", "checkpoint.sigp.io"} {
			if strings.Contains(out, bad) {
				t.Errorf("bootstrap contains %q", bad)
			}
		}
		if n := strings.Count(out, "--checkpoint-sync-url"); n != 1 {
			t.Errorf("--checkpoint-sync-url %d times, want once", n)
		}
		for _, want := range []string{
			"warning: eth-hoodi-1: execution version: the config says v1.16.7, the home release runs v1.16.1",
			"warning: eth-hoodi-1: consensus version: the config says v8.0.1, the home release runs v7.1.0",
			"geth flag left behind: --nat=extip:192.168.1.20",
			"lighthouse flag left behind: --execution-endpoint=http://home-geth.ethereum.svc.cluster.local:8551",
			"mirrored from helm release ethereum/home-geth (chart geth 1.2.3, revision 1) and ethereum/home-beacon (chart lighthouse 2.0.1, revision 1)",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr has no %q", want)
			}
		}
	})

	t.Run("print-config", func(t *testing.T) {
		out, stderr, err := render("eth-hoodi-1", append(from, "--print-config")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		t.Logf("snippet:\n%s", out)
		var snippet []map[string]any
		if err := yaml.Unmarshal([]byte(out), &snippet); err != nil || len(snippet) != 1 {
			t.Fatalf("snippet is not one fleet entry (%v):\n%s", err, out)
		}
		entry := snippet[0]
		if entry["name"] != "eth-hoodi-1" || entry["chain"] != "ethereum" || entry["network"] != "hoodi" {
			t.Errorf("entry %v", entry)
		}
		for _, want := range []string{"--syncmode=snap", "--checkpoint-sync-url=https://checkpoint-sync.hoodi.ethpandaops.io"} {
			if !strings.Contains(out, want) {
				t.Errorf("snippet does not tell about the carried flag %s", want)
			}
		}

		// Pasted into the config over the entry's keys, it is a valid config...
		doc := readTestYAML(t, cfgFile)
		fleet := doc["fleet"].([]any)
		for i, f := range fleet {
			if f.(map[string]any)["name"] == "eth-hoodi-1" {
				for k, v := range entry {
					f.(map[string]any)[k] = v
				}
				fleet[i] = f
			}
		}
		merged := writeTestYAML(t, "merged.yaml", doc)
		vout, _, err := runCLI(t, "config", "validate", "--config", merged)
		if err != nil || !strings.Contains(vout, "eth-hoodi-1 (ethereum/hoodi") {
			t.Fatalf("config validate: %v\n%s", err, vout)
		}
		// ...whose standbys run the home release without reading it.
		b, stderr, err := runCLI(t, "bootstrap", "render", "--config", merged, "--validator", "eth-hoodi-1")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		for _, want := range []string{"ethereum/client-go:v1.16.1", "sigp/lighthouse:v7.1.0", "--network hoodi"} {
			if !strings.Contains(b, want) {
				t.Errorf("bootstrap from the merged config has no %q", want)
			}
		}
	})

	t.Run("network mismatch", func(t *testing.T) {
		for _, extra := range [][]string{nil, {"--print-config"}} {
			out, _, err := render("eth-mainnet-1", append(append([]string{}, from...), extra...)...)
			if err == nil || isUsage(err) {
				t.Fatalf("%v: err = %v, want an error", extra, err)
			}
			t.Log(err)
			for _, want := range []string{`"hoodi"`, `"mainnet"`, "eth-mainnet-1", "wrong network"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %s", want)
				}
			}
			if out != "" {
				t.Errorf("printed %d bytes despite the error", len(out))
			}
		}
	})

	t.Run("missing release", func(t *testing.T) {
		_, _, err := render("eth-hoodi-1", "--from-release", ns+"/home-geth,nope", "--kubeconfig", admin)
		if !errors.Is(err, release.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		t.Log(err)
		for _, want := range []string{`"nope"`, `"ethereum"`, "helm list"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %s", want)
			}
		}
	})

	// failoverd's own identity has no access to Secrets, so no access to
	// helm's releases: the error sends the operator to their own kubeconfig.
	t.Run("forbidden for failoverd", func(t *testing.T) {
		_, _, err := render("eth-hoodi-1", "--from-release", ns+"/home-geth", "--kubeconfig", c.Kubeconfig(kubetest.Failoverd))
		if !errors.Is(err, release.ErrForbidden) {
			t.Fatalf("err = %v, want ErrForbidden", err)
		}
		t.Log(err)
		for _, want := range []string{"Secrets", "with the kubeconfig you run helm with", "--kubeconfig", kubetest.Failoverd} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %s", want)
			}
		}
	})

	// One release with only geth, on a floating tag, kept by helm's
	// configmap driver: the tag is a warning, lighthouse stays as configured.
	t.Run("floating tag, one release, configmap driver", func(t *testing.T) {
		helmInstall(t, c, ns, "tip-geth", "geth", release.DriverConfigMap, map[string]any{
			"image": map[string]any{"tag": "latest"}, "extraArgs": []any{"--hoodi"},
		})
		out, stderr, err := render("eth-hoodi-1", "--from-release", ns+"/tip-geth", "--kubeconfig", admin, "--helm-driver", "configmap")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		t.Log(stderr)
		if !strings.Contains(stderr, `"latest" is floating`) || !strings.Contains(stderr, "keeping the config's lighthouse v8.0.1") {
			t.Errorf("stderr: %s", stderr)
		}
		if !strings.Contains(out, "ethereum/client-go:latest") || !strings.Contains(out, "sigp/lighthouse:v8.0.1") {
			t.Errorf("bootstrap does not run geth latest and lighthouse v8.0.1")
		}
	})
}

func TestMirrorFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"print-config alone", []string{"--print-config"}, "--print-config goes with --from-release"},
		{"kubeconfig alone", []string{"--kubeconfig", "kc"}, "--kubeconfig goes with --from-release"},
		{"three parts", []string{"--from-release", "a/b/c"}, "want NAMESPACE/RELEASE"},
		{"empty release", []string{"--from-release", "ns/"}, "want NAMESPACE/RELEASE"},
		{"three releases", []string{"--from-release", "ns/a,b,c"}, "at most two"},
		{"same twice", []string{"--from-release", "ns/a,a"}, "the same release twice"},
		{"bad driver", []string{"--from-release", "ns/a", "--helm-driver", "sql"}, "use secret or configmap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bootstrap", "render", "--config", localConfig, "--validator", "eth-mainnet-1"}, tc.args...)
			_, _, err := runCLI(t, args...)
			if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (usage %v), want a usage error with %q", err, isUsage(err), tc.want)
			}
		})
	}
}

func TestMirrorParseReleases(t *testing.T) {
	got, err := parseReleases("eth/home-geth,other/home-beacon")
	if err != nil || len(got) != 2 || got[0] != (releaseRef{"eth", "home-geth"}) || got[1] != (releaseRef{"other", "home-beacon"}) {
		t.Errorf("got %v, %v", got, err)
	}
	got, err = parseReleases("node")
	if err != nil || len(got) != 1 || got[0] != (releaseRef{"", "node"}) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestMirrorBootstrapHelp(t *testing.T) {
	out, _, err := runCLI(t, "bootstrap", "render", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--from-release NAMESPACE/RELEASE", "--print-config", "--kubeconfig", "--kube-context", "--helm-driver", "YOUR kubeconfig", "wrong network", "home-geth,home-beacon"} {
		if !strings.Contains(out, want) {
			t.Errorf("help has no %q", want)
		}
	}
}
