package release

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func values(t *testing.T, doc string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The layout of ethpandaops/ethereum-helm-charts charts/ethereum-node
// (values.yaml: global.main.network, sub-charts switched on with enabled,
// extraArgs holding templates), after coalescing with the sub-charts'
// defaults.
const ethpandaopsNode = `
global:
  main:
    network: sepolia
geth:
  enabled: true
  nameOverride: execution
  image: {repository: ethereum/client-go, tag: v1.16.1}
  extraArgs:
    - >-
      {{- with( index .Values.global.clientArgs.networks .Values.global.main.network ) }}
        {{- range $i, $v := .execution.geth }}{{ $v }}{{- end -}}
      {{- end }}
    - --syncmode=snap
reth:
  enabled: false
  image: {repository: ghcr.io/paradigmxyz/reth, tag: latest}
lighthouse:
  enabled: true
  nameOverride: beacon
  image: {repository: sigp/lighthouse, tag: v7.1.0}
  extraArgs:
    - >-
      --execution-endpoint={{ tpl .Values.global.main.engineEndpoint . }}
prysm:
  enabled: false
`

func TestMirrorEthpandaopsEthereumNode(t *testing.T) {
	v := values(t, ethpandaopsNode)
	m, err := MappingFor(ChartEthereumNode, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Mirror(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != "sepolia" || got.NetworkFrom != `value "global.main.network"` {
		t.Errorf("network %q from %q", got.Network, got.NetworkFrom)
	}
	if got.Execution.Name != "geth" || got.Execution.Version != "v1.16.1" || !reflect.DeepEqual(got.Execution.Flags, []string{"--syncmode=snap"}) {
		t.Errorf("execution %+v", got.Execution)
	}
	if got.Consensus.Name != "lighthouse" || got.Consensus.Image != "sigp/lighthouse" || len(got.Consensus.Flags) != 0 {
		t.Errorf("consensus %+v", got.Consensus)
	}
	if len(got.Execution.Skipped) != 1 || !strings.Contains(got.Execution.Skipped[0].Reason, "template") {
		t.Errorf("templates must be skipped, not carried: %+v", got.Execution.Skipped)
	}

	// Two execution clients switched on: which one runs at home is unclear.
	v["reth"].(map[string]any)["enabled"] = true
	if _, err := MappingFor(ChartEthereumNode, v); err == nil || !strings.Contains(err.Error(), "geth, reth") {
		t.Errorf("two execution clients: %v", err)
	}
}

func TestMirrorGenericEthereumNode(t *testing.T) {
	v := values(t, `
network: Hoodi
execution:
  client: Geth
  image: {repository: ethereum/client-go, tag: v1.16.1}
  extraArgs: ["--hoodi", "--gcmode", "archive"]
consensus:
  client: lighthouse
  image: {repository: "registry.local:5000/sigp/lighthouse@sha256:abc"}
  extraArgs: []
`)
	m, err := MappingFor(ChartEthereumNode, v)
	if err != nil {
		t.Fatal(err)
	}
	m.ConsensusTag = "" // the tag is in the reference
	got, err := Mirror(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != "hoodi" || got.Execution.Name != "geth" || !reflect.DeepEqual(got.Execution.Flags, []string{"--gcmode=archive"}) {
		t.Errorf("got %+v", got)
	}
	if got.Consensus.Image != "registry.local:5000/sigp/lighthouse" || got.Consensus.Version != "sha256:abc" {
		t.Errorf("consensus image %q version %q", got.Consensus.Image, got.Consensus.Version)
	}
}

func TestMirrorErrorsNameThePath(t *testing.T) {
	geth, _ := DefaultMapping(ChartGeth)
	generic, _ := DefaultMapping(ChartEthereumNode)
	for _, tc := range []struct {
		name   string
		values string
		m      Mapping
		want   []string
	}{
		{"no image", `extraArgs: []`, geth, []string{`"image.repository"`, `no key "image" in the top level`}},
		{"no tag", `image: {repository: ethereum/client-go}`, geth, []string{`"image.tag"`, `no key "tag" in "image"`}},
		{"empty tag", `image: {repository: ethereum/client-go, tag: ""}`, geth, []string{`"image.tag": empty`}},
		{"image not a map", `image: ethereum/client-go`, geth, []string{`"image.repository"`, `"image" is a string, not a map`}},
		{"args not a list", `{image: {repository: r, tag: t}, extraArgs: "--hoodi"}`, geth, []string{`"extraArgs"`, "want a list"}},
		{"generic: no network", `{execution: {client: geth, image: {repository: r, tag: t}, extraArgs: []}, consensus: {client: lighthouse, image: {repository: r, tag: t}, extraArgs: []}}`,
			generic, []string{`network: value "network": not set`}},
		{"generic: every missing path", `{network: hoodi}`, generic, []string{`"execution.client"`, `"consensus.image.tag"`, `"execution.extraArgs"`}},
		{"network disagrees", `{image: {repository: r, tag: t}, extraArgs: ["--sepolia", "--networkid=560048"]}`, geth,
			[]string{`"sepolia"`, `"hoodi"`, "--networkid=560048"}},
		{"custom network", `{image: {repository: r, tag: t}, extraArgs: ["--testnet-dir=/net", "--network=hoodi"]}`, Mapping{ConsensusName: "lighthouse", ConsensusImage: "image.repository", ConsensusTag: "image.tag", ConsensusArgs: "extraArgs"},
			[]string{"custom:/net", "hoodi"}},
		{"no network, no default", `{image: {repository: r, tag: t}, extraArgs: []}`, Mapping{ExecutionName: "geth", ExecutionImage: "image.repository", ExecutionTag: "image.tag", ExecutionArgs: "extraArgs"},
			[]string{"no network"}},
		{"empty mapping", `{}`, Mapping{Network: "n"}, []string{"names no client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Mirror(values(t, tc.values), tc.m)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %s", err, w)
				}
			}
		})
	}
}

func TestSortFlags(t *testing.T) {
	flags, skipped, nets := sortFlags("reth", []string{
		"--chain hoodi", "--full", "--prune.receipts.before=100", "--port=30304", "stray",
		"--max-outbound-peers", "50",
	})
	if want := []string{"--full", "--prune.receipts.before=100", "--max-outbound-peers=50"}; !reflect.DeepEqual(flags, want) {
		t.Errorf("flags %q, want %q", flags, want)
	}
	if len(skipped) != 2 || skipped[0].Flag != "--port=30304" || skipped[1].Flag != "stray" {
		t.Errorf("skipped %+v", skipped)
	}
	if len(nets) != 1 || nets[0].network != "hoodi" {
		t.Errorf("networks %+v", nets)
	}
	// An in-cluster checkpoint server cannot be reached from the cloud.
	flags, skipped, _ = sortFlags("lighthouse", []string{"--checkpoint-sync-url=http://checkpointz.eth.svc:5555"})
	if len(flags) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, "cluster-internal") {
		t.Errorf("flags %q skipped %+v", flags, skipped)
	}
}

func TestMerge(t *testing.T) {
	el := Clients{Network: "hoodi", NetworkFrom: "geth flag --hoodi", Execution: Client{Name: "geth", Image: "i", Version: "v"}}
	cl := Clients{Network: "hoodi", NetworkFrom: "lighthouse flag --network=hoodi", Consensus: Client{Name: "lighthouse", Image: "i", Version: "v"}}
	got, err := Merge(el, cl)
	if err != nil || got.Execution.Name != "geth" || got.Consensus.Name != "lighthouse" {
		t.Fatalf("merge: %+v, %v", got, err)
	}
	if _, err := Merge(el, el); err == nil {
		t.Error("two execution clients merged")
	}
	cl.Network = "mainnet"
	if _, err := Merge(el, cl); err == nil || !strings.Contains(err.Error(), `"mainnet"`) {
		t.Errorf("network mismatch: %v", err)
	}
}

func TestMappingForUnknownChart(t *testing.T) {
	if _, err := MappingFor("nethermind", nil); err == nil || !strings.Contains(err.Error(), `"nethermind"`) {
		t.Errorf("err = %v", err)
	}
}
