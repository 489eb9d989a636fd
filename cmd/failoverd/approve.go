package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/interchange"
	"github.com/failoverd/failoverd/failover/keymanager"
	"github.com/failoverd/failoverd/failover/keystore"
	"github.com/failoverd/failoverd/failover/privval"
)

// moveFlags are the flags approve-migration and failback share.
type moveFlags struct {
	cf            clientFlags
	signingKey    string
	approver      string
	validity      time.Duration
	approvalFile  string
	cosignatures  []string
	printApproval bool
	keystoresDir  string
	passwordFile  string
	secret        string
	kubeconfig    string
	spFile        string
	homeKM        string
	homeKMToken   string
	fence         string
	poweredOff    bool
	wait          time.Duration
	outDir        string
}

func (f *moveFlags) register(cmd *cobra.Command) {
	f.cf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.signingKey, "signing-key", "", "your SSH key: a private key file (unencrypted), or a .pub file whose key is in your ssh-agent (SSH_AUTH_SOCK)")
	fl.StringVar(&f.approver, "approver", "", "your principal in approval.allowedSigners (default: env FAILOVERD_APPROVER, else your login name)")
	fl.DurationVar(&f.validity, "validity", approval.DefaultValidity, "how long the approval stays valid (at most 1h)")
	fl.StringVar(&f.approvalFile, "approval", "", "sign this approval file (made by --print-approval) instead of building one: all co-approvers sign the same bytes")
	fl.StringSliceVar(&f.cosignatures, "cosignature", nil, "a co-approver's signature file (ssh-keygen -Y sign -n failoverd-approval -f KEY approval.txt); repeat for each")
	fl.BoolVar(&f.printApproval, "print-approval", false, "only build the approval and print it (for co-approvers to sign); nothing is sent")
	fl.StringVar(&f.keystoresDir, "keystores", "", "directory of EIP-2335 keystore-*.json files (passwords: --password-file, or KEYSTORE.txt beside each); Berachain: priv_validator_key.json, and home's priv_validator_state.json when you have it")
	fl.StringVar(&f.passwordFile, "password-file", "", "one password for every keystore")
	fl.StringVar(&f.secret, "keystores-secret", "", "NAMESPACE/NAME of a Kubernetes Secret with keystore-*.json keys and a password key (Berachain: priv_validator_key.json, priv_validator_state.json), read with your own --kubeconfig")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "your kubeconfig for --keystores-secret (default: KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&f.spFile, "slashing-protection", "", "EIP-3076 slashing protection file to carry (merged with what the home Keymanager returns)")
	fl.StringVar(&f.homeKM, "home-keymanager", "", "the home validator client's Keymanager API URL")
	fl.StringVar(&f.homeKMToken, "home-keymanager-token-file", "", "its bearer token file (lighthouse: api-token.txt)")
	fl.DurationVar(&f.wait, "wait", 2*time.Minute, "how long to wait for failoverd to report the move done (0: do not wait)")
	fl.StringVar(&f.outDir, "out-dir", ".", "where the slashing protection in transit is saved (it is public data; keep it until the move is done)")
}

func newApproveMigrationCmd(e *env) *cobra.Command {
	f := &moveFlags{}
	cmd := &cobra.Command{
		Use:   "approve-migration INCIDENT",
		Short: "Approve and carry out a key migration to the incident's ready standby (a person's decision)",
		Long: `Move a validator's signing keys from home to the incident's ready standby.
This is a person's decision; failoverd never moves keys on its own.

What happens, in order (runbooks/approve-migration.md walks through it):
 1. failoverd tells what to sign: the incident, its standby and the standby's
    certificate.
 2. Home is fenced, one of: --home-keymanager (DELETE /eth/v1/keystores on the
    home validator client: every key must answer deleted or not_active; its
    slashing protection comes back), --fence scale-to-zero (failoverd scales
    fleet[].home.workload to zero and checks that no pod is left), or
    --confirm-home-powered-off (you answer for it; recorded).
 3. An approval naming the incident, the standby, the keys, an expiry and a
    nonce is signed with your SSH key and sent to failoverd, which checks the
    signatures (approval.threshold people), the standby, the fencing and that
    the chain shows every key silent for approval.silentEpochs finished epochs
    on the network's genesis root. Then it moves the signing right to the
    standby and answers with a grant.
 4. The keystores and passwords go from THIS machine straight to the standby's
    agent (TLS to the certificate failoverd's CA issued for it), with the
    slashing protection merged by maximum with a watermark at the current
    epoch. failoverd itself never sees a keystore or a password. The agent
    checks the approval and the grant itself, re-checks chain silence, imports
    through its validator client's Keymanager API and starts it with
    doppelganger protection.

Any refusal says why and what to do; nothing moves.`,
		Example: `  failoverd approve-migration eth-mainnet-1-1 --signing-key ~/.ssh/id_ed25519 \
    --keystores ./validator_keys --password-file ./password.txt \
    --home-keymanager https://vc.home.lan:5062 --home-keymanager-token-file ./api-token.txt
  # home is dark: keys from a Secret, a person vouches for the power-off
  failoverd approve-migration eth-mainnet-1-1 --signing-key ~/.ssh/id_ed25519.pub \
    --keystores-secret staking/eth-mainnet-1-keys --slashing-protection ./slashing.json --confirm-home-powered-off
  # two approvers: build, have the second sign, then send
  failoverd approve-migration eth-mainnet-1-1 --keystores ./validator_keys --print-approval > approval.txt
  ssh-keygen -Y sign -n failoverd-approval -f ~/.ssh/id_ed25519 approval.txt   # the co-approver
  failoverd approve-migration eth-mainnet-1-1 --approval approval.txt --cosignature approval.txt.sig ...`,
		Args: exactArgs(1, "the incident ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMove(cmd, e, f, args[0], approval.ActionMigrate)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.fence, "fence", "", "how home is fenced: keymanager (default with --home-keymanager), scale-to-zero, powered-off")
	cmd.Flags().BoolVar(&f.poweredOff, "confirm-home-powered-off", false, "you confirm the home validator is powered off and cannot sign (recorded under your name)")
	return cmd
}

func newFailbackCmd(e *env) *cobra.Command {
	f := &moveFlags{}
	cmd := &cobra.Command{
		Use:   "failback INCIDENT",
		Short: "Approve moving the signing keys back home from the incident's standby (a migration in reverse)",
		Long: `Move a migrated validator's signing right back home, through the same gates
as a migration (runbooks/failback.md):
 1. you sign a failback approval for the incident, its standby and its keys;
 2. failoverd has the standby's agent delete the keys from its validator
    client (their slashing protection comes back) and stop it;
 3. failoverd waits until the chain shows every key silent for
    approval.silentEpochs finished epochs;
 4. the signing right returns home (a new generation): the home gate opens,
    and the standby is deleted.
The slashing protection the standby returned is written to --out-dir: import
it into the home validator client BEFORE it starts (with --home-keymanager
and --keystores this command does it for you).`,
		Example: `  failoverd failback eth-mainnet-1-1 --signing-key ~/.ssh/id_ed25519 --wait 30m
  failoverd failback eth-mainnet-1-1 --signing-key ~/.ssh/id_ed25519 --wait 30m \
    --home-keymanager https://vc.home.lan:5062 --home-keymanager-token-file ./api-token.txt \
    --keystores ./validator_keys --password-file ./password.txt`,
		Args: exactArgs(1, "the incident ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMove(cmd, e, f, args[0], approval.ActionFailback)
		},
	}
	f.register(cmd)
	return cmd
}

// keys are keystores with their passwords; cleared after use.
type keys struct {
	stores    []keystore.Keystore
	passwords []string
	// Berachain: the CometBFT key file (and the home signer's last state,
	// when there is one).
	privKey   *privval.Key
	privRaw   []byte
	privState []byte
}

func (k *keys) pubkeys() []string {
	if k.privKey != nil {
		return []string{k.privKey.Pubkey}
	}
	out := make([]string, len(k.stores))
	for i, s := range k.stores {
		out[i] = s.Pubkey
	}
	return out
}

// sameKeys checks the keystores against the validator's declared keys
// before anyone signs: failoverd refuses any other set, and saying so here
// spares the approvers a signature round and a spent nonce.
func sameKeys(plan failover.Plan, have []string) error {
	if len(plan.Pubkeys) == 0 {
		return fmt.Errorf("validator %s declares no keys (fleet[].pubkeys in failoverd's config): failoverd refuses to move keys it cannot attribute; add the keys there first", plan.Validator)
	}
	if diff := failover.KeyMismatch(plan.Pubkeys, have); diff != "" {
		return fmt.Errorf("the keystores are not validator %s's %d keys (fleet[].pubkeys)%s", plan.Validator, len(plan.Pubkeys), diff)
	}
	return nil
}

func (k *keys) clear() {
	for i := range k.passwords {
		k.passwords[i] = ""
	}
	for _, s := range k.stores {
		clear(s.Raw)
	}
	clear(k.privRaw)
}

func runMove(cmd *cobra.Command, e *env, f *moveFlags, id, action string) error {
	c, err := f.cf.client(e)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pctx, cancel := context.WithTimeout(ctx, f.cf.timeout)
	plan, err := c.Plan(pctx, id)
	cancel()
	if err != nil {
		return err
	}
	if plan.Action != action {
		return fmt.Errorf("incident %s is %s: failoverd expects a %s approval for it, not a %s", id, plan.State, plan.Action, action)
	}
	if plan.Standby == "" {
		return fmt.Errorf("incident %s has no standby yet (state %s)", id, plan.State)
	}
	approver := f.approver
	if approver == "" {
		approver = e.getenv("FAILOVERD_APPROVER")
	}
	if approver == "" {
		approver = whoAmI(e)
	}

	var ks keys
	defer ks.clear()
	if action == approval.ActionMigrate || f.keystoresDir != "" || f.secret != "" {
		if ks, err = loadKeys(ctx, f, plan.ValidatorChain); err != nil {
			return err
		}
	}
	var pubkeys []string
	if action == approval.ActionMigrate {
		pubkeys = ks.pubkeys()
		if err := sameKeys(plan, pubkeys); err != nil {
			return err
		}
	} else {
		inc, err := c.GetIncident(ctx, id)
		if err != nil {
			return err
		}
		m, ok := inc.CurrentMigration()
		if !ok {
			return fmt.Errorf("incident %s has no migration to fail back", id)
		}
		pubkeys = m.Pubkeys
	}

	a, text, err := buildApproval(f, plan, pubkeys, action, approver)
	if err != nil {
		return err
	}
	if f.printApproval {
		_, err := e.stdout.Write(text)
		return err
	}
	sigs, err := signatures(f, a)
	if err != nil {
		return err
	}
	req := failover.ApprovalRequest{Incident: id, Approval: string(text)}
	for _, s := range sigs {
		req.Signatures = append(req.Signatures, string(s))
	}

	var fromHome *interchange.Interchange
	if action == approval.ActionMigrate {
		if plan.ValidatorChain == config.ChainBerachain && (f.homeKM != "" || f.fence == failover.FenceKeymanager || f.spFile != "") {
			return &usageError{errors.New("beacond has no Keymanager API and no EIP-3076 file: fence home with --fence scale-to-zero or --confirm-home-powered-off, and put home's priv_validator_state.json beside the key")}
		}
		req.Fencing, fromHome, err = fenceHome(ctx, e, f, id, pubkeys, approver)
		if err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, max(f.cf.timeout, 2*time.Minute))
	reply, err := c.Approve(rctx, req)
	cancel()
	if err != nil && !isAnswer(err) {
		// No answer is not a refusal: failoverd may have accepted the
		// approval and died before replying. Its record says which.
		fmt.Fprintf(e.stderr, "no answer from failoverd (%v); checking whether it accepted the approval...\n", err)
		reply, err = recoverReply(ctx, e, c, f, id, action, a.Nonce)
	}
	if err != nil {
		var nr *notRecordedError
		unknown := !isAnswer(err) && !errors.As(err, &nr)
		if fromHome != nil {
			advice := "If you give up on this migration, import the keys back at home with it."
			if unknown {
				advice = "Import the keys back at home with it only once failoverd owners shows home as the owner: failoverd may have accepted the move."
			}
			fmt.Fprintf(e.stderr, "The home keys were deleted by the Keymanager: their slashing protection is saved in %s. %s\n", spPath(f, id), advice)
		}
		switch {
		case unknown:
			return fmt.Errorf("the outcome is unknown: %w. Before anything else, look at failoverd incidents show %s and failoverd owners", err, id)
		case nr != nil:
			return err
		}
		return fmt.Errorf("refused: %w", err)
	}
	fmt.Fprintf(e.stdout, "approval accepted: the signing right of %s moves to %s (generation %d)\n",
		plan.Validator, migrationTo(reply.Incident), lastGeneration(reply.Incident))
	if action == approval.ActionFailback {
		return finishFailback(ctx, e, c, f, id, &ks)
	}
	if plan.ValidatorChain == config.ChainBerachain {
		return deliverPrivval(ctx, e, c, f, id, reply, req, &ks)
	}
	return deliverKeys(ctx, e, c, f, id, reply, req, &ks, fromHome)
}

// deliverPrivval sends a Berachain validator's key to the standby with a
// signing state raised past the height where the chain stood when home was
// proven silent: the new signer signs nothing the old one may have.
func deliverPrivval(ctx context.Context, e *env, c *httpapi.Client, f *moveFlags, id string, reply failover.ApprovalReply,
	req failover.ApprovalRequest, ks *keys) error {
	m, ok := reply.Incident.CurrentMigration()
	if !ok || m.Chain == nil || m.Chain.Height <= 0 {
		return errors.New("failoverd recorded no chain height for this migration: cannot raise the signing state; nothing was sent")
	}
	next := m.Chain.Height + 1
	var st privval.State
	if len(ks.privState) > 0 {
		home, err := privval.ParseState(ks.privState)
		if err != nil {
			return fmt.Errorf("%s: %w", privStateFile, err)
		}
		st = privval.Raise(home, next)
	} else {
		var err error
		if st, err = privval.Synthesize(next); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "no %s from home: the standby starts from a synthesized one at height %d\n", privStateFile, next)
	}
	stateJSON := st.File()
	out := filepath.Join(f.outDir, "priv_validator_state-"+id+".json")
	if err := os.WriteFile(out, stateJSON, 0o600); err != nil {
		return fmt.Errorf("save the signing state: %w", err)
	}
	ir := agent.ImportRequest{Approval: req.Approval, Signatures: req.Signatures, Grant: reply.Grant,
		PrivValidatorKey: string(ks.privRaw), PrivValidatorState: string(stateJSON)}
	// ks.clear (deferred by the caller) wipes the key file's bytes; the
	// string copy in ir cannot be wiped.
	res, err := agent.ImportKeys(ctx, reply.Agent, ir)
	if err != nil {
		return fmt.Errorf("the standby refused the key: %w (failoverd will stop the incident; see runbooks/approve-migration.md)", err)
	}
	for pk, s := range res.KeyStatuses {
		fmt.Fprintf(e.stdout, "  %s  %s\n", pk, s)
	}
	fmt.Fprintf(e.stdout, "standby %s: %s (signing state at height %d or above, saved in %s)\n", reply.Agent.ServerName, res.Message, next, out)
	return waitState(ctx, e, c, f, id, failover.StateMigrated)
}

// notRecordedError is what failoverd's record says of an approval whose
// reply was lost, when that is not "accepted and going on": an answer read
// from the record, not one failoverd sent.
type notRecordedError struct{ msg string }

func (e *notRecordedError) Error() string { return e.msg }

// recoverReply rebuilds failoverd's answer to an approval whose reply was
// lost, from the incident's record: the move is ours when its current
// migration carries our nonce. It waits (up to --wait; a minute for 0)
// for failoverd to come back. A *notRecordedError is what the record says;
// any other error means failoverd did not answer.
func recoverReply(ctx context.Context, e *env, c *httpapi.Client, f *moveFlags, id, action, nonce string) (failover.ApprovalReply, error) {
	patience := f.wait
	if patience <= 0 {
		patience = time.Minute
	}
	deadline := time.Now().Add(patience)
	for {
		inc, err := c.GetIncident(ctx, id)
		if err == nil {
			m, ok := inc.CurrentMigration()
			if !ok || m.Nonce != nonce || m.Action != action {
				return failover.ApprovalReply{}, &notRecordedError{fmt.Sprintf("failoverd did not record this approval (incident %s is %s: %s); it was refused or never arrived, and its nonce may be spent: sign a new one", id, inc.State, inc.Reason)}
			}
			if action == approval.ActionFailback {
				fmt.Fprintf(e.stdout, "failoverd had accepted the failback (incident %s is %s)\n", id, inc.State)
				return failover.ApprovalReply{Incident: inc}, nil
			}
			plan, err := c.Plan(ctx, id)
			if err == nil && plan.Grant != nil && plan.Chain != nil {
				fmt.Fprintf(e.stdout, "failoverd had accepted the approval (incident %s is %s); going on with its grant\n", id, inc.State)
				return failover.ApprovalReply{Incident: inc, Grant: *plan.Grant, Agent: plan.Agent, Chain: *plan.Chain}, nil
			}
			if err == nil && inc.State != failover.StateMigrating {
				return failover.ApprovalReply{}, &notRecordedError{fmt.Sprintf("failoverd accepted this approval but incident %s is now %s: %s", id, inc.State, inc.Reason)}
			}
		}
		if time.Now().After(deadline) {
			return failover.ApprovalReply{}, fmt.Errorf("failoverd has not answered since (last: %v)", err)
		}
		select {
		case <-ctx.Done():
			return failover.ApprovalReply{}, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func migrationTo(inc failover.Incident) string {
	m, _ := inc.CurrentMigration()
	return m.To
}

func lastGeneration(inc failover.Incident) int64 {
	m, _ := inc.CurrentMigration()
	return m.Generation
}

func buildApproval(f *moveFlags, plan failover.Plan, pubkeys []string, action, approver string) (approval.Approval, []byte, error) {
	if f.approvalFile != "" {
		text, err := os.ReadFile(f.approvalFile)
		if err != nil {
			return approval.Approval{}, nil, err
		}
		a, err := approval.ParseCanonical(text)
		if err != nil {
			return approval.Approval{}, nil, fmt.Errorf("%s: %w", f.approvalFile, err)
		}
		if a.Incident != plan.Incident || a.Standby != plan.Standby || a.Action != action {
			return approval.Approval{}, nil, fmt.Errorf("%s names %s %s on %s, not this %s", f.approvalFile, a.Action, a.Incident, a.Standby, action)
		}
		return a, text, nil
	}
	if len(pubkeys) == 0 {
		return approval.Approval{}, nil, &usageError{errors.New("no keys: give --keystores DIR or --keystores-secret NS/NAME")}
	}
	a, err := approval.NewApproval(plan.Incident, plan.Standby, plan.StandbyCertSHA256, pubkeys, action, approver, time.Now(), f.validity)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	text, err := a.Canonical()
	return a, text, err
}

// signatures signs with the approver's key (unless only co-signatures are
// given) and adds the co-approvers'.
func signatures(f *moveFlags, a approval.Approval) ([][]byte, error) {
	var out [][]byte
	if f.signingKey != "" {
		signer, err := loadSigner(f.signingKey)
		if err != nil {
			return nil, err
		}
		s, err := approval.Sign(a, signer)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	for _, p := range f.cosignatures {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, &usageError{errors.New("no signature: give --signing-key (and --cosignature for co-approvers)")}
	}
	return out, nil
}

// loadSigner reads an unencrypted private key, or finds the key of a .pub
// file in the ssh-agent.
func loadSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if pub, _, _, _, perr := ssh.ParseAuthorizedKey(b); perr == nil {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, fmt.Errorf("%s is a public key: its private key must be in your ssh-agent, but SSH_AUTH_SOCK is not set", path)
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		signers, err := sshagent.NewClient(conn).Signers()
		if err != nil {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		for _, s := range signers {
			if string(s.PublicKey().Marshal()) == string(pub.Marshal()) {
				return s, nil
			}
		}
		return nil, fmt.Errorf("the key of %s is not in your ssh-agent (ssh-add it)", path)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%s is passphrase protected: add it to your ssh-agent and pass its .pub file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// loadKeys reads keystores and passwords from a directory or a Secret.
// Berachain's key files, in a --keystores directory or Secret.
const (
	privKeyFile   = "priv_validator_key.json"
	privStateFile = "priv_validator_state.json"
)

// loadKeys reads the validator's keys: EIP-2335 keystores and passwords on
// Ethereum, priv_validator_key.json (and priv_validator_state.json when
// home has one) on Berachain.
func loadKeys(ctx context.Context, f *moveFlags, chain string) (keys, error) {
	files, shared, err := readKeyFiles(ctx, f)
	if err != nil {
		return keys{}, err
	}
	if chain == config.ChainBerachain {
		raw, ok := files[privKeyFile]
		if !ok {
			return keys{}, fmt.Errorf("no %s found: a Berachain validator's key is beacond's %s (config/ in its home)", privKeyFile, privKeyFile)
		}
		k, err := privval.ParseKey(raw)
		if err != nil {
			return keys{}, fmt.Errorf("%s: %w", privKeyFile, err)
		}
		out := keys{privKey: &k, privRaw: raw}
		if st, ok := files[privStateFile]; ok {
			if _, err := privval.ParseState(st); err != nil {
				return keys{}, fmt.Errorf("%s: %w", privStateFile, err)
			}
			out.privState = st
		}
		return out, nil
	}
	return parseKeystores(files, shared)
}

func readKeyFiles(ctx context.Context, f *moveFlags) (map[string][]byte, string, error) {
	var files map[string][]byte
	var shared string
	switch {
	case f.keystoresDir != "" && f.secret != "":
		return nil, "", &usageError{errors.New("give --keystores or --keystores-secret, not both")}
	case f.keystoresDir != "":
		entries, err := os.ReadDir(f.keystoresDir)
		if err != nil {
			return nil, "", err
		}
		files = map[string][]byte{}
		for _, en := range entries {
			if en.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(f.keystoresDir, en.Name()))
			if err != nil {
				return nil, "", err
			}
			files[en.Name()] = b
		}
	case f.secret != "":
		ns, name, ok := strings.Cut(f.secret, "/")
		if !ok || ns == "" || name == "" {
			return nil, "", &usageError{fmt.Errorf("--keystores-secret %q: want NAMESPACE/NAME", f.secret)}
		}
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if f.kubeconfig != "" {
			rules.ExplicitPath = f.kubeconfig
		}
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("your kubeconfig: %w", err)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, "", err
		}
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, "", fmt.Errorf("read Secret %s with your kubeconfig: %w", f.secret, err)
		}
		files = sec.Data
		if p, ok := files["password"]; ok {
			shared = strings.TrimRight(string(p), "\r\n")
		}
	default:
		return nil, "", &usageError{errors.New("no keys: give --keystores DIR or --keystores-secret NS/NAME")}
	}
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, "", err
		}
		shared = strings.TrimRight(string(b), "\r\n")
	}
	return files, shared, nil
}

func parseKeystores(files map[string][]byte, shared string) (keys, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		if strings.HasPrefix(n, "keystore") && strings.HasSuffix(n, ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return keys{}, errors.New("no keystore-*.json files found")
	}
	var out keys
	for _, n := range names {
		k, err := keystore.Parse(files[n])
		if err != nil {
			return keys{}, fmt.Errorf("%s: %w", n, err)
		}
		pw := shared
		if own, ok := files[strings.TrimSuffix(n, ".json")+".txt"]; ok {
			pw = strings.TrimRight(string(own), "\r\n")
		}
		if pw == "" {
			return keys{}, fmt.Errorf("%s: no password (--password-file, or %s.txt beside it)", n, strings.TrimSuffix(n, ".json"))
		}
		if slices.ContainsFunc(out.stores, func(s keystore.Keystore) bool { return s.Pubkey == k.Pubkey }) {
			return keys{}, fmt.Errorf("%s: key %s appears twice", n, k.Pubkey)
		}
		out.stores = append(out.stores, k)
		out.passwords = append(out.passwords, pw)
	}
	return out, nil
}

// homeKeymanager is a client of the home validator client's Keymanager API.
func homeKeymanager(f *moveFlags) (*keymanager.Client, error) {
	token := ""
	if f.homeKMToken != "" {
		b, err := os.ReadFile(f.homeKMToken)
		if err != nil {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	return keymanager.New(f.homeKM, token)
}

func spPath(f *moveFlags, id string) string {
	return filepath.Join(f.outDir, "slashing-protection-"+id+".json")
}

// fenceHome fences home the way the approver chose and returns the evidence
// (and the home's slashing protection, when the Keymanager gave it).
func fenceHome(ctx context.Context, e *env, f *moveFlags, id string, pubkeys []string, approver string) (failover.Fencing, *interchange.Interchange, error) {
	method := f.fence
	if f.poweredOff {
		if method != "" && method != failover.FencePoweredOff {
			return failover.Fencing{}, nil, &usageError{errors.New("--confirm-home-powered-off and --fence " + method + " contradict each other")}
		}
		method = failover.FencePoweredOff
	}
	if method == "" && f.homeKM != "" {
		method = failover.FenceKeymanager
	}
	switch method {
	case failover.FencePoweredOff:
		if !f.poweredOff {
			return failover.Fencing{}, nil, &usageError{errors.New("--fence powered-off needs --confirm-home-powered-off: you answer for it")}
		}
		return failover.Fencing{Method: method, ConfirmedBy: approver}, nil, nil
	case failover.FenceScale:
		return failover.Fencing{Method: method}, nil, nil
	case failover.FenceKeymanager:
		if f.homeKM == "" {
			return failover.Fencing{}, nil, &usageError{errors.New("--fence keymanager needs --home-keymanager URL")}
		}
		km, err := homeKeymanager(f)
		if err != nil {
			return failover.Fencing{}, nil, err
		}
		res, err := km.DeleteKeystores(ctx, pubkeys)
		var sp *interchange.Interchange
		if res.SlashingProtection != "" {
			// Save it first: the keys may be gone from home now.
			if werr := os.WriteFile(spPath(f, id), []byte(res.SlashingProtection), 0o600); werr != nil {
				return failover.Fencing{}, nil, fmt.Errorf("save the home slashing protection: %w", werr)
			}
			if sp, err = interchange.Parse([]byte(res.SlashingProtection)); err != nil {
				return failover.Fencing{}, nil, fmt.Errorf("the home Keymanager's slashing protection: %w", err)
			}
		}
		if err != nil {
			return failover.Fencing{}, sp, fmt.Errorf("home Keymanager DELETE: %w", err)
		}
		st := map[string]string{}
		for _, k := range res.Keys {
			st[k.Pubkey] = string(k.Status)
		}
		fmt.Fprintf(e.stderr, "home Keymanager: %d keys answered; slashing protection saved to %s\n", len(res.Keys), spPath(f, id))
		return failover.Fencing{Method: method, KeyStatuses: st}, sp, nil
	default:
		return failover.Fencing{}, nil, &usageError{errors.New("say how home is fenced: --home-keymanager URL, --fence scale-to-zero, or --confirm-home-powered-off")}
	}
}

// deliverKeys sends the keys to the standby's agent with the approval, the
// grant and the merged slashing protection, then waits for failoverd.
func deliverKeys(ctx context.Context, e *env, c *httpapi.Client, f *moveFlags, id string, reply failover.ApprovalReply,
	req failover.ApprovalRequest, ks *keys, fromHome *interchange.Interchange) error {
	root, pubkeys := reply.Chain.GenesisValidatorsRoot, ks.pubkeys()
	parts := []*interchange.Interchange{}
	if fromHome != nil {
		parts = append(parts, fromHome)
	}
	if f.spFile != "" {
		b, err := os.ReadFile(f.spFile)
		if err != nil {
			return err
		}
		sp, err := interchange.Parse(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f.spFile, err)
		}
		parts = append(parts, sp)
	}
	// Whatever the history says, nothing at or below the current epoch and
	// slot is ever signed again.
	wm, err := interchange.Watermark(root, pubkeys, reply.Chain.Epoch, reply.Chain.Slot)
	if err != nil {
		return err
	}
	parts = append(parts, wm)
	merged, err := interchange.Merge(root, parts...)
	if err != nil {
		return fmt.Errorf("merge slashing protection: %w", err)
	}
	if err := merged.Validate(root, pubkeys); err != nil {
		return fmt.Errorf("slashing protection: %w", err)
	}
	spJSON, err := merged.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(spPath(f, id), spJSON, 0o600); err != nil {
		return fmt.Errorf("save the slashing protection: %w", err)
	}
	ir := agent.ImportRequest{Approval: req.Approval, Signatures: req.Signatures, Grant: reply.Grant, SlashingProtection: string(spJSON)}
	for i, s := range ks.stores {
		ir.Keystores = append(ir.Keystores, string(s.Raw))
		ir.Passwords = append(ir.Passwords, ks.passwords[i])
	}
	res, err := agent.ImportKeys(ctx, reply.Agent, ir)
	clear(ir.Passwords)
	if err != nil {
		return fmt.Errorf("the standby refused the keys: %w (failoverd will stop the incident; see runbooks/approve-migration.md)", err)
	}
	pks := make([]string, 0, len(res.KeyStatuses))
	for pk := range res.KeyStatuses {
		pks = append(pks, pk)
	}
	sort.Strings(pks)
	for _, pk := range pks {
		fmt.Fprintf(e.stdout, "  %s  %s\n", pk, res.KeyStatuses[pk])
	}
	fmt.Fprintf(e.stdout, "standby %s: %s\n", reply.Agent.ServerName, res.Message)
	return waitState(ctx, e, c, f, id, failover.StateMigrated)
}

func waitState(ctx context.Context, e *env, c *httpapi.Client, f *moveFlags, id string, want failover.State) error {
	if f.wait <= 0 {
		return nil
	}
	deadline := time.Now().Add(f.wait)
	for {
		inc, err := c.GetIncident(ctx, id)
		if err == nil {
			switch inc.State {
			case want:
				fmt.Fprintf(e.stdout, "incident %s is %s: %s\n", id, inc.State, inc.Reason)
				return nil
			case failover.StateFailed:
				return fmt.Errorf("incident %s stopped: %s", id, inc.Reason)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("incident %s is not %s after %s (now %s: %s); follow it with failoverd incidents show %s",
				id, want, f.wait, inc.State, inc.Reason, id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// homeProtection is the standby's slashing protection merged by maximum
// with a watermark where the chain clock stood when the standby was proven
// silent: whatever the standby's database missed (a signature in flight as
// it stopped), home signs nothing at or below that point.
//
// A standby lost by the cloud returned nothing: the watermark alone then
// stands for everything it may have signed.
func homeProtection(m failover.Migration) ([]byte, error) {
	var parts []*interchange.Interchange
	if m.SlashingProtection != "" {
		sp, err := interchange.Parse([]byte(m.SlashingProtection))
		if err != nil {
			return nil, fmt.Errorf("the standby's slashing protection: %w", err)
		}
		parts = append(parts, sp)
	}
	if m.Chain == nil {
		return nil, errors.New("failoverd recorded no chain position for this failback: import the standby's slashing protection at home by hand (runbooks/failback.md)")
	}
	root := m.Chain.GenesisValidatorsRoot
	wm, err := interchange.Watermark(root, m.Pubkeys, m.Chain.Epoch, m.Chain.Slot)
	if err != nil {
		return nil, err
	}
	merged, err := interchange.Merge(root, append(parts, wm)...)
	if err != nil {
		return nil, fmt.Errorf("merge the standby's slashing protection: %w", err)
	}
	if err := merged.Validate(root, m.Pubkeys); err != nil {
		return nil, fmt.Errorf("slashing protection for home: %w", err)
	}
	return merged.Marshal()
}

// homeSigningState writes what home's beacond must start from after a
// Berachain failback: the standby's last signing state raised past the
// height where the chain stood when the standby was proven silent.
func homeSigningState(e *env, f *moveFlags, id string, m failover.Migration) error {
	if m.Chain == nil || m.Chain.Height <= 0 {
		return errors.New("failoverd recorded no chain height for this failback: build home's priv_validator_state.json by hand (runbooks/failback.md)")
	}
	next := m.Chain.Height + 1
	st, err := privval.Synthesize(next)
	if err != nil {
		return err
	}
	if m.PrivValidatorState != "" {
		sb, err := privval.ParseState([]byte(m.PrivValidatorState))
		if err != nil {
			return fmt.Errorf("the standby's priv_validator_state.json: %w", err)
		}
		st = privval.Raise(sb, next)
	}
	out := filepath.Join(f.outDir, "priv_validator_state-"+id+".json")
	if err := os.WriteFile(out, st.File(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "home's signing state (height %d or above) is in %s: put it in beacond's data/%s, with the key in config/, before beacond starts (its gate opens now)\n",
		next, out, privStateFile)
	return nil
}

// finishFailback waits for the signing right to come home, saves the
// standby's slashing protection and, when asked, imports the keys at home.
func finishFailback(ctx context.Context, e *env, c *httpapi.Client, f *moveFlags, id string, ks *keys) error {
	if err := waitState(ctx, e, c, f, id, failover.StateClosed); err != nil {
		return err
	}
	if f.wait <= 0 {
		return nil
	}
	inc, err := c.GetIncident(ctx, id)
	if err != nil {
		return err
	}
	m, _ := inc.CurrentMigration()
	if inc.Chain == config.ChainBerachain {
		return homeSigningState(e, f, id, m)
	}
	sp, err := homeProtection(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(spPath(f, id), sp, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "the standby's slashing protection, raised to epoch %d slot %d (where the chain stood when the standby was silent), is in %s: import it at home before the validator client signs\n",
		m.Chain.Epoch, m.Chain.Slot, spPath(f, id))
	if f.homeKM == "" || len(ks.stores) == 0 {
		return nil
	}
	km, err := homeKeymanager(f)
	if err != nil {
		return err
	}
	stores := make([]string, len(ks.stores))
	for i, s := range ks.stores {
		stores[i] = string(s.Raw)
	}
	st, err := km.ImportKeystores(ctx, stores, ks.passwords, string(sp))
	if err != nil {
		return fmt.Errorf("home import: %w", err)
	}
	if err := keymanager.AllImported(st, len(stores)); err != nil {
		return fmt.Errorf("home import: %w", err)
	}
	fmt.Fprintf(e.stdout, "home imported %d keys with the standby's slashing protection\n", len(stores))
	return nil
}
