package release

import (
	"errors"
	"fmt"
	"strings"

	"github.com/failoverd/failoverd/failover/config"
)

// Clients is what the standby takes from the home release(s).
type Clients struct {
	// Network is the network's name (mainnet, hoodi, sepolia, …).
	Network string `json:"network"`
	// NetworkFrom says where Network came from, for review: `value
	// "global.main.network"`, `geth flag --sepolia`, or `default (no network
	// value or flag)`.
	NetworkFrom string `json:"networkFrom"`
	Execution   Client `json:"execution"`
	Consensus   Client `json:"consensus"`
	// Warnings are things a person should look at before trusting the
	// result (a floating image tag, …).
	Warnings []string `json:"warnings,omitempty"`
}

// Client is one client of the home release.
type Client struct {
	Name    string `json:"name"`
	Image   string `json:"image"`   // repository, without the tag
	Version string `json:"version"` // the image tag
	// Flags are the home flags worth carrying over to the standby
	// (sync/prune/history mode, peers, checkpoint sync, …), as --name=value.
	// Network flags are not here: they are Network.
	Flags []string `json:"flags,omitempty"`
	// Skipped are the home flags left behind, with why.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a home flag the standby does not take.
type Skipped struct {
	Flag   string `json:"flag"`
	Reason string `json:"reason"`
}

// Empty says the release does not carry this client.
func (c Client) Empty() bool { return c.Name == "" && c.Image == "" && c.Version == "" }

// Config is the clients in the shape of the failoverd config
// (validator.clients). Image is the repository; the standby runs
// Image:Version.
func (c Clients) Config() config.Clients {
	return config.Clients{
		Execution: config.Client{Name: c.Execution.Name, Version: c.Execution.Version, Image: c.Execution.Image},
		Consensus: config.Client{Name: c.Consensus.Name, Version: c.Consensus.Version, Image: c.Consensus.Image},
	}
}

// Mirror picks the clients out of a release's values (from ReadValues) as
// m says. Every path m sets must be there: the error names the first one
// missing. The network must agree everywhere it is given.
func Mirror(values map[string]any, m Mapping) (Clients, error) {
	var out Clients
	var errs []error
	var nets []networkClaim

	layer := func(kind, name, namePath, image, tag, args string) Client {
		var c Client
		if name == "" && namePath == "" && image == "" && tag == "" && args == "" {
			return c
		}
		var err error
		c.Name = name
		if namePath != "" {
			if c.Name, err = lookupString(values, namePath); err != nil {
				errs = append(errs, fmt.Errorf("%s client name: %w", kind, err))
			}
		}
		c.Name = strings.ToLower(c.Name)
		switch {
		case image == "":
			errs = append(errs, fmt.Errorf("%s client: no image path in the mapping", kind))
		default:
			if c.Image, err = lookupString(values, image); err != nil {
				errs = append(errs, fmt.Errorf("%s image: %w", kind, err))
			}
		}
		if tag != "" {
			if c.Version, err = lookupString(values, tag); err != nil {
				errs = append(errs, fmt.Errorf("%s image tag: %w", kind, err))
			}
		} else if c.Image != "" {
			// The tag is part of the image reference (repo:tag).
			if repo, t, ok := splitTag(c.Image); ok {
				c.Image, c.Version = repo, t
			} else {
				errs = append(errs, fmt.Errorf("%s image: value %q = %q has no tag, and the mapping gives no tag path", kind, image, c.Image))
			}
		}
		if isFloating(c.Version) {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s image tag %q is floating: the standby may pull another version than the one running at home; pin a version", kind, c.Version))
		}
		if args != "" {
			list, err := lookupArgs(values, args)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s flags: %w", kind, err))
			}
			var claims []networkClaim
			c.Flags, c.Skipped, claims = sortFlags(c.Name, list)
			nets = append(nets, claims...)
		}
		return c
	}
	out.Execution = layer("execution", m.ExecutionName, m.ExecutionNamePath, m.ExecutionImage, m.ExecutionTag, m.ExecutionArgs)
	out.Consensus = layer("consensus", m.ConsensusName, m.ConsensusNamePath, m.ConsensusImage, m.ConsensusTag, m.ConsensusArgs)
	if out.Execution.Empty() && out.Consensus.Empty() && len(errs) == 0 {
		errs = append(errs, errors.New("the mapping names no client value"))
	}

	if m.Network != "" {
		n, err := lookupString(values, m.Network)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: %w", err))
		} else {
			nets = append([]networkClaim{{network: strings.ToLower(n), from: fmt.Sprintf("value %q", m.Network)}}, nets...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Clients{}, err
	}
	switch {
	case len(nets) > 0:
		out.Network, out.NetworkFrom = nets[0].network, nets[0].from
		for _, c := range nets[1:] {
			if c.network != out.Network {
				return Clients{}, fmt.Errorf("network: %s says %q but %s says %q", out.NetworkFrom, out.Network, c.from, c.network)
			}
		}
		if strings.HasPrefix(out.Network, "custom:") {
			return Clients{}, fmt.Errorf("network: %s selects a network defined by local files; the standby cannot mirror it", out.NetworkFrom)
		}
	case m.DefaultNetwork != "":
		out.Network, out.NetworkFrom = m.DefaultNetwork, "default (no network value or flag)"
	default:
		return Clients{}, errors.New("network: the mapping gives no network path, no network flag was found and there is no default")
	}
	return out, nil
}

// Merge joins the halves of two releases (a geth release and a lighthouse
// release): each client must come from exactly one, and the networks must
// agree.
func Merge(a, b Clients) (Clients, error) {
	out := a
	switch {
	case a.Execution.Empty():
		out.Execution = b.Execution
	case !b.Execution.Empty():
		return Clients{}, fmt.Errorf("both releases have an execution client (%s and %s)", a.Execution.Name, b.Execution.Name)
	}
	switch {
	case a.Consensus.Empty():
		out.Consensus = b.Consensus
	case !b.Consensus.Empty():
		return Clients{}, fmt.Errorf("both releases have a consensus client (%s and %s)", a.Consensus.Name, b.Consensus.Name)
	}
	if a.Network != b.Network {
		return Clients{}, fmt.Errorf("network: one release runs %q (%s), the other %q (%s)", a.Network, a.NetworkFrom, b.Network, b.NetworkFrom)
	}
	if a.NetworkFrom != b.NetworkFrom {
		out.NetworkFrom = a.NetworkFrom + "; " + b.NetworkFrom
	}
	out.Warnings = append(append([]string(nil), a.Warnings...), b.Warnings...)
	return out, nil
}

func splitTag(ref string) (repo, tag string, ok bool) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:], true // a digest pins best of all
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return "", "", false // no tag, or a registry port
	}
	return ref[:i], ref[i+1:], true
}

func isFloating(tag string) bool {
	switch strings.ToLower(tag) {
	case "latest", "stable", "unstable", "nightly", "master", "main", "develop", "edge":
		return true
	}
	return false
}

// networkClaim is one place that selects the network.
type networkClaim struct{ network, from string }

// Well-known networks, by geth's --networkid.
var networkIDs = map[string]string{"1": "mainnet", "11155111": "sepolia", "17000": "holesky", "560048": "hoodi"}

// networkBools are flags that select a network on their own (geth, prysm).
var networkBools = map[string]bool{"mainnet": true, "sepolia": true, "holesky": true, "hoodi": true}

// carried are the flags each client takes to the standby, and whether they
// take a value. The standby's bootstrap sets its own ports, data dir,
// endpoints, JWT, NAT and metrics; these are the behaviour the operator
// chose: sync and storage mode, history, peers, checkpoint sync, fees.
var carried = map[string]map[string]bool{
	"geth": {
		"syncmode": true, "gcmode": true, "state.scheme": true, "history.state": true,
		"history.transactions": true, "history.chain": true, "history.logs": true, "cache": true, "maxpeers": true,
		"db.engine": true, "snapshot": false, "txlookuplimit": true,
	},
	"reth": {
		"full": false, "prune.": true, "max-outbound-peers": true, "max-inbound-peers": true,
		"engine.persistence-threshold": true, "engine.memory-block-buffer-target": true,
	},
	"lighthouse": {
		"checkpoint-sync-url": true, "checkpoint-sync-url-timeout": true, "target-peers": true,
		"prune-payloads": true, "prune-blobs": true, "reconstruct-historical-states": false,
		"disable-deposit-contract-sync": false, "genesis-backfill": false, "disable-backfill-rate-limiting": false,
		"historic-state-cache-size": true, "supernode": false, "subscribe-all-subnets": false,
		"import-all-attestations": false, "suggested-fee-recipient": true, "blob-prune-margin-epochs": true,
	},
}

// customNetwork flags point a client at a network defined by files: the
// standby cannot follow that from values alone.
var customNetwork = map[string]bool{"testnet-dir": true, "genesis": true, "datadir.genesis": true}

// sortFlags splits a client's extra args into carried flags, skipped flags
// and network claims. An item may hold several words ("--network sepolia"):
// the charts splice each into the container's shell command line.
func sortFlags(client string, args []string) (flags []string, skipped []Skipped, nets []networkClaim) {
	allowed := carried[client]
	var words []string
	for _, a := range args {
		if strings.Contains(a, "{{") {
			skipped = append(skipped, Skipped{Flag: strings.TrimSpace(a), Reason: "a template rendered at install time"})
			continue
		}
		words = append(words, strings.Fields(a)...)
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") {
			skipped = append(skipped, Skipped{Flag: w, Reason: "not a flag"})
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		takesValue, known := lookupFlag(allowed, name)
		if networkBools[name] {
			takesValue, known = false, true
		}
		isNet := name == "network" || name == "chain" || name == "networkid"
		// "--name value": the next word is the value when the flag takes
		// one, or when we do not know the flag (so its value goes with it).
		if !hasValue && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") && (takesValue || !known || isNet) {
			value, hasValue = words[i+1], true
			i++
		}
		flag := "--" + name
		if hasValue {
			flag += "=" + value
		}
		switch {
		case isNet && hasValue:
			n := strings.ToLower(value)
			if name == "networkid" {
				if named, ok := networkIDs[value]; ok {
					n = named
				}
			}
			nets = append(nets, networkClaim{network: n, from: fmt.Sprintf("%s flag %s", client, flag)})
		case networkBools[name] && !hasValue:
			nets = append(nets, networkClaim{network: name, from: fmt.Sprintf("%s flag %s", client, flag)})
		case customNetwork[name]:
			nets = append(nets, networkClaim{network: "custom:" + value, from: fmt.Sprintf("%s flag %s", client, flag)})
			skipped = append(skipped, Skipped{Flag: flag, Reason: "a network defined by local files"})
		case !known:
			skipped = append(skipped, Skipped{Flag: flag, Reason: "node-local or not known to carry over"})
		case strings.Contains(value, ".svc") || strings.Contains(value, "cluster.local"):
			skipped = append(skipped, Skipped{Flag: flag, Reason: "a cluster-internal address the standby cannot reach"})
		default:
			flags = append(flags, flag)
		}
	}
	return flags, skipped, nets
}

// lookupFlag finds name in allowed, where a key ending in "." is a prefix.
func lookupFlag(allowed map[string]bool, name string) (takesValue, known bool) {
	if v, ok := allowed[name]; ok {
		return v, true
	}
	for k, v := range allowed {
		if strings.HasSuffix(k, ".") && strings.HasPrefix(name, k) {
			return v, true
		}
	}
	return false, false
}
