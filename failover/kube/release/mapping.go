package release

import (
	"fmt"
	"sort"
	"strings"
)

// Mapping says where in a release's values the clients are: each field
// except the names is a dotted path ("image.tag", "geth.image.repository").
// An empty path means the release does not carry that item: a chart for
// one client (ethpandaops' geth, lighthouse) fills only its half, and Merge
// joins two releases.
type Mapping struct {
	// ExecutionName is the execution client's name (geth, reth, …), or
	// ExecutionNamePath where the chart has it as a value.
	ExecutionName, ExecutionNamePath string
	ExecutionImage, ExecutionTag     string
	// ExecutionArgs is a list of extra command-line flags.
	ExecutionArgs string

	ConsensusName, ConsensusNamePath string
	ConsensusImage, ConsensusTag     string
	ConsensusArgs                    string

	// Network is the network's name (mainnet, hoodi, sepolia). Empty: the
	// network comes from the clients' network flags (--sepolia,
	// --network=hoodi, --chain=sepolia), or else DefaultNetwork.
	Network string
	// DefaultNetwork is what the clients run when nothing selects a network
	// (mainnet for geth, reth and lighthouse); empty: a missing network is
	// an error.
	DefaultNetwork string
}

// Chart names DefaultMapping knows.
const (
	ChartGeth         = "geth"
	ChartReth         = "reth"
	ChartLighthouse   = "lighthouse"
	ChartEthereumNode = "ethereum-node"
)

// DefaultMapping is the layout of a known chart, by the chart's name
// (ChartInfo.Chart). For ethpandaops' ethereum-node umbrella chart, whose
// clients are sub-charts switched on in the values, use MappingFor.
func DefaultMapping(chartName string) (Mapping, bool) {
	switch chartName {
	case ChartGeth:
		// ethpandaops/ethereum-helm-charts charts/geth/values.yaml:
		// image.repository (ethereum/client-go), image.tag, extraArgs
		// (e.g. "--sepolia"); no network value (geth defaults to mainnet).
		return Mapping{
			ExecutionName: "geth", ExecutionImage: "image.repository", ExecutionTag: "image.tag", ExecutionArgs: "extraArgs",
			DefaultNetwork: "mainnet",
		}, true
	case ChartReth:
		// ethpandaops/ethereum-helm-charts charts/reth/values.yaml:
		// image.repository (ghcr.io/paradigmxyz/reth), image.tag, extraArgs
		// (e.g. "--chain=hoodi"); reth defaults to mainnet.
		return Mapping{
			ExecutionName: "reth", ExecutionImage: "image.repository", ExecutionTag: "image.tag", ExecutionArgs: "extraArgs",
			DefaultNetwork: "mainnet",
		}, true
	case ChartLighthouse:
		// ethpandaops/ethereum-helm-charts charts/lighthouse/values.yaml:
		// image.repository (sigp/lighthouse), image.tag, mode
		// (beacon|validator|bootnode), extraArgs (e.g. "--network=sepolia",
		// "--checkpoint-sync-url=…"); lighthouse defaults to mainnet.
		return Mapping{
			ConsensusName: "lighthouse", ConsensusImage: "image.repository", ConsensusTag: "image.tag", ConsensusArgs: "extraArgs",
			DefaultNetwork: "mainnet",
		}, true
	case ChartEthereumNode:
		// A generic node chart with one sub-object per layer:
		//   network: hoodi
		//   execution: {client: geth, image: {repository, tag}, extraArgs: []}
		//   consensus: {client: lighthouse, image: {repository, tag}, extraArgs: []}
		// (ethpandaops' chart of the same name has another layout: MappingFor
		// tells them apart.)
		return Mapping{
			ExecutionNamePath: "execution.client", ExecutionImage: "execution.image.repository",
			ExecutionTag: "execution.image.tag", ExecutionArgs: "execution.extraArgs",
			ConsensusNamePath: "consensus.client", ConsensusImage: "consensus.image.repository",
			ConsensusTag: "consensus.image.tag", ConsensusArgs: "consensus.extraArgs",
			Network: "network",
		}, true
	}
	return Mapping{}, false
}

// The sub-charts of ethpandaops' ethereum-node chart, by layer.
var (
	ethpandaopsExecution = []string{"besu", "erigon", "ethereumjs", "geth", "nethermind", "reth"}
	ethpandaopsConsensus = []string{"grandine", "lighthouse", "lodestar", "nimbus", "prysm", "teku"}
)

// MappingFor is the mapping for a release of chartName with these values:
// DefaultMapping, except for ethpandaops' ethereum-node umbrella chart
// (charts/ethereum-node/values.yaml: global.main.network, and one sub-chart
// per client — geth:, lighthouse:, … — switched on with enabled: true, each
// with the single-client chart's own image.repository, image.tag and
// extraArgs).
func MappingFor(chartName string, values map[string]any) (Mapping, error) {
	if chartName == ChartEthereumNode {
		if _, err := Lookup(values, "global.main.network"); err == nil {
			return ethpandaopsNodeMapping(values)
		}
	}
	m, ok := DefaultMapping(chartName)
	if !ok {
		return Mapping{}, fmt.Errorf("chart %q: no known value layout (known: %s, %s, %s, %s); give the value paths in the config",
			chartName, ChartGeth, ChartReth, ChartLighthouse, ChartEthereumNode)
	}
	return m, nil
}

func ethpandaopsNodeMapping(values map[string]any) (Mapping, error) {
	enabled := func(layer string, names []string) (string, error) {
		var on []string
		for _, n := range names {
			if v, err := Lookup(values, n+".enabled"); err == nil && v == true {
				on = append(on, n)
			}
		}
		sort.Strings(on)
		if len(on) != 1 {
			return "", fmt.Errorf("ethereum-node chart: want exactly one %s client enabled (one of %s.enabled), found %d: %s",
				layer, strings.Join(names, "|"), len(on), strings.Join(on, ", "))
		}
		return on[0], nil
	}
	el, err := enabled("execution", ethpandaopsExecution)
	if err != nil {
		return Mapping{}, err
	}
	cl, err := enabled("consensus", ethpandaopsConsensus)
	if err != nil {
		return Mapping{}, err
	}
	return Mapping{
		ExecutionName: el, ExecutionImage: el + ".image.repository", ExecutionTag: el + ".image.tag", ExecutionArgs: el + ".extraArgs",
		ConsensusName: cl, ConsensusImage: cl + ".image.repository", ConsensusTag: cl + ".image.tag", ConsensusArgs: cl + ".extraArgs",
		Network: "global.main.network",
	}, nil
}

// Lookup finds the value at a dotted path. The error names the path and
// the first key that is missing.
func Lookup(values map[string]any, path string) (any, error) {
	if path == "" {
		return nil, fmt.Errorf("empty value path")
	}
	var cur any = values
	keys := strings.Split(path, ".")
	for i, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("value %q: %q is a %s, not a map", path, strings.Join(keys[:i], "."), typeName(cur))
		}
		v, ok := m[k]
		if !ok || v == nil {
			return nil, fmt.Errorf("value %q: not set (no key %q in %s)", path, k, parentName(keys[:i]))
		}
		cur = v
	}
	return cur, nil
}

// lookupString is Lookup for a non-empty scalar, as a string.
func lookupString(values map[string]any, path string) (string, error) {
	v, err := Lookup(values, path)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			return "", fmt.Errorf("value %q: empty", path)
		}
		return x, nil
	case int, int64, float64, bool:
		// An unquoted tag (image.tag: 1.34) arrives as a number.
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("value %q: a %s, want a string", path, typeName(v))
}

// lookupArgs is Lookup for a list of flags.
func lookupArgs(values map[string]any, path string) ([]string, error) {
	v, err := Lookup(values, path)
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("value %q: a %s, want a list of flags", path, typeName(v))
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("value %q[%d]: a %s, want a string", path, i, typeName(item))
		}
		out = append(out, s)
	}
	return out, nil
}

func parentName(keys []string) string {
	if len(keys) == 0 {
		return "the top level"
	}
	return fmt.Sprintf("%q", strings.Join(keys, "."))
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "map"
	case []any:
		return "list"
	case string:
		return "string"
	case bool:
		return "bool"
	case nil:
		return "null"
	case int, int64, float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}
