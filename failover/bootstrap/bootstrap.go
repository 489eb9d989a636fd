// Package bootstrap renders what a standby VM boots with: a cloud-init
// document (AWS) or a startup script (GCP) that installs Docker, mounts the
// chain-data disk, generates the Engine API JWT, runs the execution client
// and the consensus beacon node as systemd units, and installs the standby
// agent with its mutual-TLS credentials and what it needs to import keys.
//
// A standby boots keyless: the rendered bootstrap never contains a keystore,
// a password, slashing-protection data or a copy of any home signing key.
// Keys reach a standby only through the approval path (the agent's key
// import), and every signer on it starts through a gate that fails closed:
// on Ethereum a lighthouse validator client that runs with no keys until the
// agent imports them; on Berachain beacond, whose CometBFT key is a
// throwaway until the agent asks the host to install the validator's.
//
// Rendering is deterministic (same Input, same bytes), because the engine
// sends the bootstrap inside idempotent cloud create requests. What the VM
// runs is described in README.md next to this file.
package bootstrap

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/config"
)

// Format is the shape of the rendered bootstrap.
type Format string

const (
	// FormatCloudInit is a #cloud-config document: write_files for the units
	// and credentials, runcmd for the steps script.
	FormatCloudInit Format = "cloud-init"
	// FormatScript is one bash script (a GCP startup-script).
	FormatScript Format = "script"
)

// Client is one chain client the standby runs.
type Client struct {
	// Name selects the command line: geth, lighthouse (ethereum); reth,
	// bera-reth, beacond (berachain).
	Name string
	// Image overrides the default image (see DefaultImage).
	Image string
	// Version is the image tag when Image is empty.
	Version string
	// ExtraArgs are appended to the client's command line.
	ExtraArgs []string
}

// Agent is the standby agent and its mutual-TLS credentials, generated per
// standby by failoverd.
type Agent struct {
	// Image is the failoverd image; empty: DefaultAgentImage + Version.
	Image string
	// Version is the failoverd image tag when Image is empty.
	Version string
	// Port the agent listens on; 0: 7443.
	Port int
	// CACertPEM is the CA the agent trusts for client certificates
	// (failoverd's own). CertPEM and KeyPEM are the agent's server identity.
	CACertPEM, CertPEM, KeyPEM []byte
}

// Approval is what the standby agent checks a key import against itself:
// failoverd's approval.* settings. It never holds a secret.
type Approval struct {
	// AllowedSigners are the approvers' OpenSSH allowed_signers lines
	// (approval.allowedSigners plus the lines of approval.allowedSignersFile;
	// an entry may hold several lines). Empty: the agent takes no keys.
	AllowedSigners []string
	// Threshold is how many distinct approvers must sign; 0: 1.
	Threshold int
	// SilentEpochs is the chain silence the agent checks again right before
	// an import; 0: 3 (and never fewer).
	SilentEpochs int
	// SilentBlocks is the same on Berachain, in blocks; 0: 150 (and never
	// fewer).
	SilentBlocks int
}

// Input is everything a bootstrap is rendered from.
type Input struct {
	Validator, Chain, Network string
	Execution, Consensus      Client
	// Approval enables key import on the standby's agent.
	Approval Approval
	// FeeRecipient is the validator's fee recipient (0x + 40 hex): the
	// lighthouse validator client's --suggested-fee-recipient, or beacond's
	// payload builder once the validator's key is installed. Empty: none.
	FeeRecipient string
	// CheckpointSyncURL for the beacon node; empty: DefaultCheckpointSyncURL.
	// A network without one syncs from genesis (the output says so).
	CheckpointSyncURL string
	// DataDisk says how to find the chain-data disk: "gcp:<device name>"
	// (/dev/disk/by-id/google-<device name>) or "aws:/dev/sdf" (the NVMe
	// device whose EBS mapping is sdf). Empty: DataDiskFor(provider) in
	// RenderFor; required by Render.
	DataDisk string
	Agent    Agent
	Format   Format
}

// Paths on the VM.
const (
	DataDir   = "/var/lib/failoverd-chain"
	DataLabel = "failoverd-data"
	ConfigDir = "/etc/failoverd"
	// ControlDir is shared by the agent and the host: the agent asks for a
	// clean stop of the clients there, and the host's path unit answers.
	ControlDir      = "/var/lib/failoverd-agent"
	StopClientsUnit = "failoverd-stop-clients.path"
	StepsPath       = "/usr/local/sbin/failoverd-bootstrap"
	ExecutionUnit   = "failoverd-execution.service"
	BeaconUnit      = "failoverd-beacon.service"
	AgentUnit       = "failoverd-agent.service"
	// ValidatorUnit is the Ethereum standby's lighthouse validator client.
	// It is never enabled: the agent's unit wants it, and every start passes
	// GatePath first.
	ValidatorUnit = "failoverd-validator.service"
	// GatePath is the ExecStartPre of every signer on the standby (the
	// validator client; beacond on Berachain). It fails closed.
	GatePath = "/usr/local/sbin/failoverd-gate"
	// ValidatorStartFile is the agent's open gate (failover/agent
	// ValidatorStartFile): the ownership generation, written only after the
	// agent has checked a person's approval and failoverd's grant.
	ValidatorStartFile = ControlDir + "/validator-start"
	// ValidatorDir holds the validator client's keys and slashing
	// protection. It is on the boot disk, so a chain-data snapshot never
	// carries a key.
	ValidatorDir = "/var/lib/failoverd-validator"
	// KeymanagerTokenFile is the validator client's Keymanager API token,
	// made on the VM (never in the bootstrap), read by lighthouse
	// (--http-token-path) and by the agent (--keymanager-token-file).
	KeymanagerTokenFile = ConfigDir + "/keymanager/api-token.txt"
	// AllowedSignersFile is the approvers' keys for the agent.
	AllowedSignersFile = ConfigDir + "/allowed_signers"
	// AgentStateDir keeps the agent's signer state (generation, used
	// approvals) on the boot disk.
	AgentStateDir = ControlDir + "/state"
	// KeymanagerURL is the validator client's Keymanager API, loopback only.
	KeymanagerURL = "http://127.0.0.1:5062"
	// AgentUID runs the agent container (the failoverd image's nonroot
	// user); the files it must read or write belong to this group or user.
	AgentUID = 65532
	// CometBFTKeyUnit installs or removes the Berachain validator's CometBFT
	// key when the agent asks through CometBFTStageDir, restarting beacond;
	// CometBFTKeyScript is what it runs.
	CometBFTKeyUnit   = "failoverd-cometbft-key.path"
	CometBFTKeyScript = "/usr/local/sbin/failoverd-cometbft-key"
	CometBFTStageDir  = ControlDir + "/cometbft"
	// DoubleSignCheckHeight is CometBFT's consensus.double_sign_check_height
	// on a Berachain standby: beacond refuses to start with a key that signed
	// any of the last this many blocks.
	DoubleSignCheckHeight = 10
	// MinLighthouseMajor is the oldest lighthouse whose validator client
	// takes --http-token-path.
	MinLighthouseMajor = 7
	defaultPort        = 7443
	beaconAPIPort      = 5052
	executionRPC       = 8545
	engineAPIPort      = 8551
	keymanagerPort     = 5062
	containerData      = "/data"
	containerJWT       = containerData + "/jwt.hex"
	stopTimeoutSec     = 180
)

// DefaultAgentImage is the failoverd image repository; the tag is Agent.Version.
const DefaultAgentImage = "ghcr.io/failoverd/failoverd"

// Placeholder stands in for credentials that failoverd generates per standby
// at provisioning (see PlaceholderAgent).
const Placeholder = "<generated per standby at provisioning>"

// PlaceholderAgent is an Agent whose credentials are PEM-shaped placeholders,
// for reviewing a bootstrap (failoverd bootstrap render). Render accepts them;
// a VM booted with them would have an agent that cannot start.
func PlaceholderAgent(image string, port int) Agent {
	ph := func(typ string) []byte {
		return []byte("-----BEGIN " + typ + "-----\n" + Placeholder + "\n-----END " + typ + "-----\n")
	}
	return Agent{Image: image, Port: port, CACertPEM: ph("CERTIFICATE"), CertPEM: ph("CERTIFICATE"), KeyPEM: ph("PRIVATE KEY")}
}

// chainNetworks are the networks each chain supports.
var chainNetworks = map[string][]string{
	"ethereum":  {"mainnet", "hoodi", "sepolia"},
	"berachain": {"mainnet", "bepolia"},
}

// clientSpec is what the bootstrap knows about one client.
type clientSpec struct {
	chain, layer string // layer: execution | consensus
	repo         string // default image repository
	entrypoint   string // binary on the image's PATH
}

var clients = map[string]clientSpec{
	"geth":       {"ethereum", "execution", "ethereum/client-go", "geth"},
	"lighthouse": {"ethereum", "consensus", "sigp/lighthouse", "lighthouse"},
	// Plain reth follows Berachain with the chain's genesis file; Berachain's
	// own docs now point to bera-reth, its Reth-SDK fork. Both images have
	// the binary as ENTRYPOINT (/usr/local/bin/reth, /usr/local/bin/bera-reth).
	"reth":      {"berachain", "execution", "ghcr.io/paradigmxyz/reth", "reth"},
	"bera-reth": {"berachain", "execution", "ghcr.io/berachain/bera-reth", "bera-reth"},
	// beacon-kit's Makefile pushes ghcr.io/berachain/beacon-kit:<version>
	// (binary /usr/bin/beacond).
	"beacond": {"berachain", "consensus", "ghcr.io/berachain/beacon-kit", "beacond"},
}

// DefaultImage is the image for a client name and version.
func DefaultImage(name, version string) (string, error) {
	c, ok := clients[name]
	if !ok {
		return "", fmt.Errorf("unknown client %q", name)
	}
	if version == "" {
		return "", fmt.Errorf("client %q: a version is needed to pick its image", name)
	}
	return c.repo + ":" + version, nil
}

// Checkpoint sync endpoints. mainnet and sepolia are Sigma Prime's
// (lighthouse's own). hoodi: ethereum.org's networks page
// (https://ethereum.org/en/developers/docs/networks/, Hoodi → Resources →
// "Checkpoint Sync") links https://checkpoint-sync.hoodi.ethpandaops.io;
// https://hoodi.checkpoint.sigp.io is listed by community endpoint lists too.
var checkpointURLs = map[string]string{
	"ethereum/mainnet": "https://mainnet.checkpoint.sigp.io",
	"ethereum/sepolia": "https://sepolia.checkpoint.sigp.io",
	"ethereum/hoodi":   "https://checkpoint-sync.hoodi.ethpandaops.io",
}

// DefaultCheckpointSyncURL is the checkpoint sync endpoint used for a chain's
// network, "" when there is none (the beacon node syncs from genesis).
func DefaultCheckpointSyncURL(chain, network string) string {
	return checkpointURLs[chain+"/"+network]
}

// berachainNets: chain ID and beacon-kit chain spec per network, from
// Berachain's node scripts (berachain/guides apps/node-scripts/env.sh) and
// beacon-kit's testing/networks/<chain id>/app.toml (chain-spec).
var berachainNets = map[string]struct{ id, spec string }{
	"mainnet": {"80094", "mainnet"},
	"bepolia": {"80069", "testnet"},
}

// DataDiskFor is where each provider attaches the data disk: GCP's device
// name "data" (cloud/gcp) and AWS's /dev/sdf (cloud/aws).
func DataDiskFor(provider string) (string, error) {
	switch provider {
	case "gcp":
		return "gcp:data", nil
	case "aws":
		return "aws:/dev/sdf", nil
	}
	return "", fmt.Errorf("bootstrap: no data disk convention for provider %q (want gcp or aws)", provider)
}

// FormatFor is the format each provider boots: GCP runs a startup-script
// (metadata key startup-script), AWS hands user-data to cloud-init.
func FormatFor(provider string) (Format, error) {
	switch provider {
	case "gcp":
		return FormatScript, nil
	case "aws":
		return FormatCloudInit, nil
	}
	return "", fmt.Errorf("bootstrap: no bootstrap format for provider %q (want gcp or aws)", provider)
}

// ErrTooLarge is returned (wrapped) by RenderFor when the bootstrap exceeds
// the provider's user-data limit.
var ErrTooLarge = errors.New("bootstrap too large for the provider's user-data limit")

// RenderFor renders for a provider: it picks the provider's format and data
// disk convention (when Input leaves DataDisk empty) and enforces
// cloud.MaxUserData[provider].
func RenderFor(in Input, provider string) ([]byte, error) {
	f, err := FormatFor(provider)
	if err != nil {
		return nil, err
	}
	in.Format = f
	if in.DataDisk == "" {
		if in.DataDisk, err = DataDiskFor(provider); err != nil {
			return nil, err
		}
	}
	out, err := Render(in)
	if err != nil {
		return nil, err
	}
	packed, err := Pack(out, provider)
	if err != nil {
		return nil, err
	}
	if limit, ok := cloud.MaxUserData[provider]; ok && len(packed) > limit {
		return nil, fmt.Errorf("bootstrap: %d bytes for %s (%d packed), limit %d: %w", len(out), provider, len(packed), limit, ErrTooLarge)
	}
	return out, nil
}

// Pack is the rendered bootstrap as the provider receives it. EC2 user-data
// holds 16 KB, so for AWS the cloud-init document is gzipped (cloud-init
// recognises gzip on its own); the gzip header carries no time or name, so
// the same bootstrap packs to the same bytes, as idempotent creates need.
// GCP's startup-script is plain text.
func Pack(out []byte, provider string) ([]byte, error) {
	if provider != "aws" {
		return out, nil
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(out); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

//go:embed templates/*.tmpl
var templateFS embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad) + "\n"
	},
}).ParseFS(templateFS, "templates/*.tmpl"))

// file is one file the bootstrap installs.
type file struct {
	Path, Mode, Content string
	Unit                string // the systemd unit restarted when it changes
}

// unit is the view of one container unit.
type unit struct {
	Name, Description, Image, Entrypoint string
	Args, Mounts                         []string
	EnvFile                              string
	After                                string
	StopTimeout, TimeoutStop             int
	// Gate is the first ExecStartPre: a signer starts only when it exits 0.
	Gate string
	// User runs the container as uid:gid instead of the image's user.
	User string
	// Wants are units started along with this one (each passes its own gate).
	Wants string
	// NoInstall leaves out [Install]: the unit cannot be enabled.
	NoInstall bool
	Restart   string
	// RestartSec is how long systemd waits before a restart.
	RestartSec int
}

// view is what the script and cloud-init templates see.
type view struct {
	Input
	Inline               bool // script format: files are written by the script
	Files                []file
	Units                []string
	DiskKind, DiskName   string
	ExecName, ConsName   string
	ExecImage, ConsImage string
	ExecEntry, ConsEntry string
	Berachain            bool
	ControlDir           string
	ChainID, ChainSpec   string
	SeedURL              string
	Restarts             []restart
	// Start are the units the steps start; Gated are started through their
	// gate, where a closed gate is logged and does not stop the bootstrap.
	Start, Gated []string
	// Paths and settings the step, gate and key scripts use.
	Ethereum                   bool
	ValidatorDir, TokenFile    string
	StageDir, StartFile        string
	AgentUID, DoubleSignHeight int
	GatedUnit                  string
	DataDir, ValidatorHome     string
	BeaconUnitName             string
	CometBFTKeyUnit            string
	GatePath                   string
	ValidatorUnitName          string
}

// restart: the unit is restarted when put changed any of the paths.
type restart struct {
	Unit  string
	Paths []string
	// Gated: a closed gate may refuse the restart; that is logged.
	Gated bool
}

// Render validates the input, applies defaults and renders the bootstrap in
// in.Format. It does not check a size limit; RenderFor does.
func Render(in Input) ([]byte, error) {
	v, err := prepare(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	switch v.Format {
	case FormatScript:
		v.Inline = true
		err = tmpl.ExecuteTemplate(&buf, "script", v)
	case FormatCloudInit:
		var steps bytes.Buffer
		if err = tmpl.ExecuteTemplate(&steps, "script", v); err == nil {
			v.Files = append(v.Files, file{Path: StepsPath, Mode: "0700", Content: steps.String()})
			err = tmpl.ExecuteTemplate(&buf, "cloud-init", v)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: render: %w", err)
	}
	return buf.Bytes(), nil
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	imageRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	gcpDiskRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	awsDiskRE = regexp.MustCompile(`^/dev/(sd|xvd)([b-z])$`)
	urlRE     = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$`)
	argRE     = regexp.MustCompile(`^[ -!#-&(-\[\]-~]+$`) // printable ASCII without " ' \
	// Flags that would give the execution client or the beacon node keys or
	// a signer: the only signer is the gated one the bootstrap sets up.
	forbiddenArg = regexp.MustCompile(`(?i)keystore|validators?[-_]dir|secrets[-_]dir|priv_validator|slashing|--validators?\b|--fee-recipient`)
)

type validationError struct{ problems []string }

func (e *validationError) Error() string {
	return "bootstrap: invalid input: " + strings.Join(e.problems, "; ")
}

func prepare(in Input) (*view, error) {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	if !nameRE.MatchString(in.Validator) {
		add("Validator %q: lowercase letters, digits and '-', at most 63 characters", in.Validator)
	}
	nets, ok := chainNetworks[in.Chain]
	if !ok {
		add("Chain %q: want ethereum or berachain", in.Chain)
	} else if !contains(nets, in.Network) {
		add("Network %q: %s networks are %s", in.Network, in.Chain, strings.Join(nets, ", "))
	}
	switch in.Format {
	case FormatScript, FormatCloudInit:
	case "":
		add("Format is required (cloud-init or script)")
	default:
		add("Format %q: want cloud-init or script", in.Format)
	}

	execImg, execEntry := checkClient(add, "Execution", in.Chain, "execution", &in.Execution)
	consImg, consEntry := checkClient(add, "Consensus", in.Chain, "consensus", &in.Consensus)

	if in.CheckpointSyncURL == "" {
		in.CheckpointSyncURL = DefaultCheckpointSyncURL(in.Chain, in.Network)
	} else if in.Chain == "berachain" {
		add("CheckpointSyncURL: berachain (beacond, CometBFT) has no checkpoint sync; leave it empty")
	} else if !urlRE.MatchString(in.CheckpointSyncURL) {
		add("CheckpointSyncURL %q: want an http(s) URL", in.CheckpointSyncURL)
	}

	checkSigner(add, &in)

	v := &view{Input: in, ControlDir: ControlDir, ExecName: in.Execution.Name, ConsName: in.Consensus.Name,
		ExecImage: execImg, ConsImage: consImg, ExecEntry: execEntry, ConsEntry: consEntry,
		ValidatorDir: ValidatorDir, TokenFile: KeymanagerTokenFile, StageDir: CometBFTStageDir,
		StartFile: ValidatorStartFile, AgentUID: AgentUID, DoubleSignHeight: DoubleSignCheckHeight,
		DataDir: DataDir, ValidatorHome: DataDir + "/beacond", BeaconUnitName: BeaconUnit, CometBFTKeyUnit: CometBFTKeyUnit,
		GatePath: GatePath, ValidatorUnitName: ValidatorUnit}

	kind, name, _ := strings.Cut(in.DataDisk, ":")
	switch {
	case in.DataDisk == "":
		add(`DataDisk is required ("gcp:<device name>" or "aws:/dev/sdf")`)
	case kind == "gcp" && gcpDiskRE.MatchString(name):
	case kind == "aws" && awsDiskRE.MatchString(name):
		name = awsDiskRE.FindStringSubmatch(name)[2] // the letter: sdf, xvdf and the NVMe mapping all end in it
	default:
		add(`DataDisk %q: want "gcp:<device name>" or "aws:/dev/sd[b-z]"`, in.DataDisk)
	}
	v.DiskKind, v.DiskName = kind, name

	a := &v.Input.Agent
	if a.Port == 0 {
		a.Port = defaultPort
	}
	if a.Port < 1 || a.Port > 65535 {
		add("Agent.Port %d: want 1-65535", a.Port)
	}
	switch {
	case a.Image != "":
	case a.Version != "":
		a.Image = DefaultAgentImage + ":" + a.Version
	default:
		add("Agent.Image (or Agent.Version) is required")
	}
	if a.Image != "" && !imageRE.MatchString(a.Image) {
		add("Agent.Image %q: not an image reference", a.Image)
	}
	checkPEM(add, "Agent.CACertPEM", a.CACertPEM, "CERTIFICATE")
	checkPEM(add, "Agent.CertPEM", a.CertPEM, "CERTIFICATE")
	checkPEM(add, "Agent.KeyPEM", a.KeyPEM, "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY")

	if len(p) > 0 {
		return nil, &validationError{p}
	}

	v.Ethereum, v.GatedUnit = in.Chain == "ethereum", ValidatorUnit
	if in.Chain == "berachain" {
		n := berachainNets[in.Network]
		v.Berachain, v.ChainID, v.ChainSpec = true, n.id, n.spec
		v.SeedURL = "https://raw.githubusercontent.com/berachain/beacon-kit/main/testing/networks/" + n.id
		v.GatedUnit = BeaconUnit
	}
	if err := v.buildFiles(); err != nil {
		return nil, err
	}
	return v, nil
}

func checkClient(add func(string, ...any), field, chain, layer string, c *Client) (image, entry string) {
	spec, ok := clients[c.Name]
	switch {
	case c.Name == "":
		add("%s.Name is required", field)
		return "", ""
	case !ok:
		add("%s.Name %q: the bootstrap knows geth, lighthouse (ethereum) and reth, bera-reth, beacond (berachain)", field, c.Name)
		return "", ""
	case chainNetworks[chain] != nil && (spec.chain != chain || spec.layer != layer):
		add("%s.Name %q: a %s %s client, not a %s %s client", field, c.Name, spec.chain, spec.layer, chain, layer)
	}
	image = c.Image
	switch {
	case image != "":
		if !imageRE.MatchString(image) {
			add("%s.Image %q: not an image reference", field, image)
		}
	case c.Version == "":
		add("%s.Version is required when %s.Image is empty", field, field)
	case !versionRE.MatchString(c.Version):
		add("%s.Version %q: not an image tag", field, c.Version)
	default:
		image = spec.repo + ":" + c.Version
	}
	for i, a := range c.ExtraArgs {
		switch {
		case !argRE.MatchString(a) || strings.TrimSpace(a) == ";":
			add("%s.ExtraArgs[%d] %q: printable ASCII without quotes or backslashes", field, i, a)
		case forbiddenArg.MatchString(a):
			add("%s.ExtraArgs[%d] %q: keys and validator flags have no place here; the standby's only signer starts empty, through its gate", field, i, a)
		}
	}
	return image, spec.entrypoint
}

var (
	feeRecipientRE = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)
	majorRE        = regexp.MustCompile(`^v?([0-9]+)\.[0-9]+`)
)

// checkSigner validates what the standby's signer and its agent get, and
// applies their defaults to in.
func checkSigner(add func(string, ...any), in *Input) {
	if in.FeeRecipient != "" && !feeRecipientRE.MatchString(in.FeeRecipient) {
		add("FeeRecipient %q: want 0x and 40 hex digits", in.FeeRecipient)
	}
	// A lighthouse without --http-token-path would refuse the unit's flags
	// only on the VM, in the middle of an outage; say so now.
	if in.Consensus.Name == "lighthouse" && in.Consensus.Image == "" {
		if m := majorRE.FindStringSubmatch(in.Consensus.Version); m != nil {
			if major, err := strconv.Atoi(m[1]); err == nil && major < MinLighthouseMajor {
				add("Consensus.Version %q: the standby's validator client needs lighthouse v%d.0.0 or later (--http-token-path)", in.Consensus.Version, MinLighthouseMajor)
			}
		}
	}
	a := &in.Approval
	if a.Threshold == 0 {
		a.Threshold = 1
	}
	if a.SilentEpochs == 0 {
		a.SilentEpochs = minSilentEpochs
	}
	if a.SilentEpochs < minSilentEpochs {
		add("Approval.SilentEpochs %d: at least %d", a.SilentEpochs, minSilentEpochs)
	}
	if a.SilentBlocks == 0 {
		a.SilentBlocks = minSilentBlocks
	}
	if a.SilentBlocks < minSilentBlocks {
		add("Approval.SilentBlocks %d: at least %d", a.SilentBlocks, minSilentBlocks)
	}
	if len(a.AllowedSigners) == 0 {
		return
	}
	for i, l := range a.AllowedSigners {
		if strings.Contains(l, "FAILOVERD_EOF") || strings.ContainsAny(l, "\r\x00") {
			add("Approval.AllowedSigners[%d]: must not contain FAILOVERD_EOF, carriage returns or NUL", i)
			return
		}
	}
	signers, err := approval.ParseAllowedSigners(a.AllowedSigners)
	switch {
	case err != nil:
		add("Approval.AllowedSigners: %v", err)
	case len(signers) == 0:
		// Only comments: the agent would start with an empty list and
		// refuse every import; render it without import instead.
		a.AllowedSigners = nil
	case a.Threshold < 1 || a.Threshold > len(signers.Principals()):
		add("Approval.Threshold %d: between 1 and the %d approvers listed", a.Threshold, len(signers.Principals()))
	}
}

// minSilentEpochs mirrors beacon.MinSilentEpochs (DESIGN.md rule 4) without
// importing the beacon client into the renderer.
const minSilentEpochs = 3

// minSilentBlocks mirrors cometbft.DefaultBlocks, the fewest blocks
// failoverd accepts as Berachain silence.
const minSilentBlocks = 150

// allowedSignersFile is the agent's --allowed-signers file: the lines that
// are neither blank nor comments, trimmed.
func allowedSignersFile(lines []string) string {
	var b strings.Builder
	for _, chunk := range lines {
		for _, l := range strings.Split(chunk, "\n") {
			if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

func checkPEM(add func(string, ...any), field string, b []byte, types ...string) {
	if len(b) == 0 {
		add("%s is required", field)
		return
	}
	if bytes.Contains(b, []byte("FAILOVERD_EOF")) {
		add("%s: must not contain FAILOVERD_EOF", field)
		return
	}
	for _, t := range types {
		if string(b) == "-----BEGIN "+t+"-----\n"+Placeholder+"\n-----END "+t+"-----\n" {
			return
		}
	}
	blk, rest := pem.Decode(b)
	if blk == nil || len(bytes.TrimSpace(rest)) != 0 || !contains(types, blk.Type) {
		add("%s: want one PEM block of type %s", field, strings.Join(types, " or "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// systemdArg quotes one argument for an ExecStart line: % and $ are
// specifier and variable characters there.
func systemdArg(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if strings.ContainsAny(s, " \t;") {
		return `"` + s + `"`
	}
	return s
}

func (v *view) buildFiles() error {
	in := v.Input
	dataMount := DataDir + ":" + containerData
	execArgs, consArgs := v.clientArgs()
	for _, a := range in.Execution.ExtraArgs {
		execArgs = append(execArgs, systemdArg(a))
	}
	for _, a := range in.Consensus.ExtraArgs {
		consArgs = append(consArgs, systemdArg(a))
	}
	execUnit := unit{Name: "failoverd-execution", Description: "failoverd standby: " + in.Execution.Name + " (execution client)",
		Image: v.ExecImage, Entrypoint: v.ExecEntry, Args: execArgs, Mounts: []string{dataMount}}
	if v.Berachain {
		// Written by the steps from the network's el-bootnodes.txt; systemd
		// splits $EL_PEER_ARGS into zero or more arguments.
		execUnit.EnvFile = ConfigDir + "/execution.env"
	}
	consUnit := unit{Name: "failoverd-beacon", Description: "failoverd standby: " + in.Consensus.Name + " (beacon node, no validator)",
		Image: v.ConsImage, Entrypoint: v.ConsEntry, Args: consArgs, Mounts: []string{dataMount}, After: ExecutionUnit}
	if v.Berachain {
		// beacond is the signer once the validator's CometBFT key is
		// installed, so it too starts only through the gate.
		consUnit.Description = "failoverd standby: beacond (a validator only once the agent installs its key)"
		consUnit.Gate = GatePath
	}
	agentUnit := unit{Name: "failoverd-agent", Description: "failoverd standby agent (status and key import over mutual TLS)",
		Image: in.Agent.Image, Entrypoint: "failoverd", User: fmt.Sprintf("%d:%d", AgentUID, AgentUID),
		Mounts: []string{ConfigDir + ":" + ConfigDir + ":ro", DataDir + ":" + DataDir + ":ro", ControlDir + ":" + ControlDir},
		Args: append([]string{"agent",
			fmt.Sprintf("--listen 0.0.0.0:%d", in.Agent.Port),
			"--tls-cert " + ConfigDir + "/agent.crt",
			"--tls-key " + ConfigDir + "/agent.key",
			"--client-ca " + ConfigDir + "/ca.crt",
			fmt.Sprintf("--execution-url http://127.0.0.1:%d", executionRPC),
			fmt.Sprintf("--beacon-url http://127.0.0.1:%d", beaconAPIPort),
			"--data-path " + DataDir,
			"--control-dir " + ControlDir,
		}, v.agentKeyArgs()...)}
	units := []unit{execUnit, consUnit, agentUnit}
	if v.Ethereum {
		// The agent imports through the validator client's Keymanager API,
		// so the validator client comes up with the agent (after a reboot
		// too, where nothing else would start a unit that is not enabled).
		units[2].Wants = ValidatorUnit
		units = append(units, v.validatorUnit())
	}

	// agent.key is group-readable for the agent's container user; the
	// steps give it that group.
	v.Files = []file{
		{Path: ConfigDir + "/ca.crt", Mode: "0644", Content: withNewline(in.Agent.CACertPEM), Unit: AgentUnit},
		{Path: ConfigDir + "/agent.crt", Mode: "0644", Content: withNewline(in.Agent.CertPEM), Unit: AgentUnit},
		{Path: ConfigDir + "/agent.key", Mode: "0640", Content: withNewline(in.Agent.KeyPEM), Unit: AgentUnit},
	}
	if args := v.agentKeyArgs(); len(args) > 0 {
		v.Files = append(v.Files, file{Path: AllowedSignersFile, Mode: "0644", Content: allowedSignersFile(in.Approval.AllowedSigners), Unit: AgentUnit})
	}
	var gate bytes.Buffer
	if err := tmpl.ExecuteTemplate(&gate, "gate", v); err != nil {
		return fmt.Errorf("bootstrap: render gate: %w", err)
	}
	// No unit restarts when the gate changes: it is read at every start.
	v.Files = append(v.Files, file{Path: GatePath, Mode: "0755", Content: gate.String()})

	for _, u := range units {
		u.StopTimeout, u.TimeoutStop, u.Restart, u.RestartSec = stopTimeoutSec, stopTimeoutSec+30, "always", 10
		switch u.Name + ".service" {
		case AgentUnit:
			u.StopTimeout, u.TimeoutStop = 10, 40
		case ValidatorUnit:
			// A closed gate fails the start; on-failure polls the gate
			// every 30 s, so the unit waits for it rather than giving up.
			u.StopTimeout, u.TimeoutStop, u.Restart, u.RestartSec, u.NoInstall = 30, 60, "on-failure", 30, true
		}
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, "unit", u); err != nil {
			return fmt.Errorf("bootstrap: render unit %s: %w", u.Name, err)
		}
		name := u.Name + ".service"
		path := "/etc/systemd/system/" + name
		v.Files = append(v.Files, file{Path: path, Mode: "0644", Content: b.String(), Unit: name})
		if !u.NoInstall {
			v.Units = append(v.Units, name)
		}
		if u.Gate != "" {
			v.Gated = append(v.Gated, name)
		} else {
			v.Start = append(v.Start, name)
		}
		r := restart{Unit: name, Paths: []string{path}, Gated: u.Gate != ""}
		if u.EnvFile != "" {
			r.Paths = append(r.Paths, u.EnvFile)
		}
		switch {
		case name == AgentUnit && v.Ethereum && len(v.agentKeyArgs()) > 0, name == ValidatorUnit:
			// Both read the token at start.
			r.Paths = append(r.Paths, KeymanagerTokenFile)
		case name == BeaconUnit && v.Berachain:
			// The steps enforce double_sign_check_height there.
			r.Paths = append(r.Paths, DataDir+"/beacond/config/config.toml")
		}
		v.Restarts = append(v.Restarts, r)
	}
	// A clean stop of the clients, on the agent's request (the snapshot
	// keeper's): the agent can only write a file; the host does the rest.
	v.Files = append(v.Files,
		file{Path: "/etc/systemd/system/" + StopClientsUnit, Mode: "0644", Unit: StopClientsUnit, Content: "[Unit]\n" +
			"Description=failoverd: stop the clients cleanly when the agent asks (snapshot keeper)\n\n" +
			"[Path]\nPathExists=" + ControlDir + "/stop-requested\n\n[Install]\nWantedBy=multi-user.target\n"},
		file{Path: "/etc/systemd/system/failoverd-stop-clients.service", Mode: "0644", Unit: StopClientsUnit, Content: "[Unit]\n" +
			"Description=failoverd: stop the clients cleanly so the data disk can be snapshotted\n\n" +
			"[Service]\nType=oneshot\n" +
			"ExecStart=/bin/systemctl stop " + BeaconUnit + " " + ExecutionUnit + "\n" +
			"ExecStart=/bin/sync\n" +
			"ExecStart=/usr/bin/touch " + ControlDir + "/clients-stopped\n"})
	v.Units = append(v.Units, StopClientsUnit)
	v.Start = append(v.Start, StopClientsUnit)
	if v.Berachain {
		// The agent cannot touch beacond or systemd: it stages the key and
		// asks; the host installs it (or puts a throwaway back) and
		// restarts beacond, whose gate then decides.
		var key bytes.Buffer
		if err := tmpl.ExecuteTemplate(&key, "cometbft-key", v); err != nil {
			return fmt.Errorf("bootstrap: render cometbft key script: %w", err)
		}
		v.Files = append(v.Files,
			file{Path: CometBFTKeyScript, Mode: "0755", Content: key.String()},
			file{Path: "/etc/systemd/system/" + CometBFTKeyUnit, Mode: "0644", Unit: CometBFTKeyUnit, Content: "[Unit]\n" +
				"Description=failoverd: install or remove the validator's CometBFT key when the agent asks\n\n" +
				"[Path]\nPathExists=" + CometBFTStageDir + "/install-requested\nPathExists=" + CometBFTStageDir + "/remove-requested\n\n" +
				"[Install]\nWantedBy=multi-user.target\n"},
			file{Path: "/etc/systemd/system/failoverd-cometbft-key.service", Mode: "0644", Unit: CometBFTKeyUnit, Content: "[Unit]\n" +
				"Description=failoverd: install or remove the validator's CometBFT key (restarts beacond)\n" +
				"After=docker.service\n\n" +
				"[Service]\nType=oneshot\n" +
				"ExecStart=" + CometBFTKeyScript + "\n"})
		v.Units = append(v.Units, CometBFTKeyUnit)
		v.Start = append(v.Start, CometBFTKeyUnit)
	}
	for _, f := range v.Files {
		if f.Unit != AgentUnit || strings.HasSuffix(f.Path, ".service") {
			continue
		}
		for i := range v.Restarts {
			if v.Restarts[i].Unit == AgentUnit {
				v.Restarts[i].Paths = append(v.Restarts[i].Paths, f.Path)
			}
		}
	}
	return nil
}

// agentKeyArgs are the agent's key import flags: on Ethereum, with
// approvers configured. The agent imports into the validator client's
// Keymanager API; it has no Berachain import yet, so a Berachain agent
// takes no keys.
func (v *view) agentKeyArgs() []string {
	a := v.Input.Approval
	if len(a.AllowedSigners) == 0 {
		return nil
	}
	if v.Berachain {
		// The key goes to beacond through the host's key unit
		// (failoverd-cometbft-key.path); the agent checks silence on the
		// local node by its CometBFT chain ID.
		return []string{
			"--chain berachain",
			"--allowed-signers " + AllowedSignersFile,
			fmt.Sprintf("--approval-threshold %d", a.Threshold),
			"--cometbft-dir " + CometBFTStageDir,
			"--cometbft-chain-id " + config.CometBFTChainID(v.Input.Network),
			"--state-dir " + AgentStateDir,
			fmt.Sprintf("--silent-blocks %d", a.SilentBlocks),
		}
	}
	if !v.Ethereum {
		return nil
	}
	return []string{
		"--allowed-signers " + AllowedSignersFile,
		fmt.Sprintf("--approval-threshold %d", a.Threshold),
		"--keymanager-url " + KeymanagerURL,
		"--keymanager-token-file " + KeymanagerTokenFile,
		"--state-dir " + AgentStateDir,
		fmt.Sprintf("--silent-epochs %d", a.SilentEpochs),
	}
}

// validatorUnit is the Ethereum standby's lighthouse validator client, from
// the beacon node's own image (the same pinned release). It starts with no
// keys: the agent imports them through its Keymanager API after an
// approval, with their slashing protection, so --init-slashing-protection is
// never given (lighthouse creates the database itself while it holds no
// key, and refuses to start with keys but no database, which is what we
// want after that).
func (v *view) validatorUnit() unit {
	in := v.Input
	args := []string{"vc", "--network " + in.Network,
		"--validators-dir " + ValidatorDir + "/validators",
		"--secrets-dir " + ValidatorDir + "/secrets",
		fmt.Sprintf("--beacon-nodes http://127.0.0.1:%d", beaconAPIPort),
		"--enable-doppelganger-protection",
		// No --http-address: lighthouse listens on 127.0.0.1 by default and
		// insists on --unencrypted-http-transport with any address given.
		"--http", fmt.Sprintf("--http-port %d", keymanagerPort),
		"--http-token-path " + KeymanagerTokenFile,
	}
	if in.FeeRecipient != "" {
		args = append(args, "--suggested-fee-recipient "+in.FeeRecipient)
	}
	args = append(args, "--metrics", "--metrics-address 127.0.0.1", "--metrics-port 5064")
	tokenDir := path.Dir(KeymanagerTokenFile)
	return unit{Name: "failoverd-validator", Description: "failoverd standby: lighthouse validator client (starts only through the gate)",
		Image: v.ConsImage, Entrypoint: v.ConsEntry, Args: args,
		Mounts: []string{ValidatorDir + ":" + ValidatorDir, tokenDir + ":" + tokenDir + ":ro"},
		After:  BeaconUnit, Gate: GatePath}
}

func withNewline(b []byte) string {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// clientArgs are the command lines (after the entrypoint) of the execution
// client and the beacon node. Metrics listen on 127.0.0.1 only; the agent
// reads the execution RPC on 8545 and the beacon API on 5052.
func (v *view) clientArgs() (exec, cons []string) {
	in := v.Input
	jwt := "--authrpc.jwtsecret " + containerJWT
	switch in.Execution.Name {
	case "geth":
		if in.Network != "mainnet" {
			exec = append(exec, "--"+in.Network)
		}
		exec = append(exec, "--datadir /data/execution", "--port 30303",
			"--authrpc.addr 127.0.0.1", fmt.Sprintf("--authrpc.port %d", engineAPIPort), jwt,
			"--http", "--http.addr 127.0.0.1", fmt.Sprintf("--http.port %d", executionRPC), "--http.api eth,net",
			"--metrics", "--metrics.addr 127.0.0.1", "--metrics.port 6060")
	case "reth", "bera-reth":
		exec = append(exec, "node", "--chain /data/seed/eth-genesis.json", "--datadir /data/execution", "--port 30303",
			"--authrpc.addr 127.0.0.1", fmt.Sprintf("--authrpc.port %d", engineAPIPort), jwt,
			"--http", "--http.addr 127.0.0.1", fmt.Sprintf("--http.port %d", executionRPC), "--http.api eth,net",
			"--metrics 127.0.0.1:6060", "$EL_PEER_ARGS")
	}
	switch in.Consensus.Name {
	case "lighthouse":
		cons = append(cons, "bn", "--network "+in.Network, "--datadir /data/consensus", "--port 9000",
			fmt.Sprintf("--execution-endpoint http://127.0.0.1:%d", engineAPIPort), "--execution-jwt "+containerJWT)
		if in.CheckpointSyncURL != "" {
			cons = append(cons, "--checkpoint-sync-url "+in.CheckpointSyncURL)
		}
		cons = append(cons, "--http", "--http-address 127.0.0.1", fmt.Sprintf("--http-port %d", beaconAPIPort),
			"--metrics", "--metrics-address 127.0.0.1", "--metrics-port 5054")
	case "beacond":
		// Everything else is in /data/beacond/config/{app,config}.toml,
		// written by the steps.
		cons = append(cons, "start", "--home /data/beacond")
	}
	return exec, cons
}
