// Package kubetest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver as local processes on 127.0.0.1, RBAC on, several users
// authenticated by bearer tokens. There is no controller-manager and no
// kubelet: a Deployment never gets pods, `serviceaccount/default` is not
// created by itself, and a test that needs a running pod writes its status.
//
// Binaries: kube-apiserver from $FAILOVERD_TOOLS_BIN (tools/build.sh builds
// the pinned v1.31.0 there; `make tools`), falling back to the default tools
// cache and then PATH; etcd from PATH (Debian's etcd-server). When one is
// missing, Start skips the test, or fails it when FAILOVERD_E2E_REQUIRED is
// set, so CI can never pass by skipping.
//
// One cluster per test:
//
//	c := kubetest.Start(t)
//
// One cluster for a whole package (≈4 s saved per test):
//
//	var cluster *kubetest.Cluster
//	var clusterErr error
//
//	func TestMain(m *testing.M) {
//		cluster, clusterErr = kubetest.StartCluster("")
//		code := m.Run()
//		cluster.Stop()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) { kubetest.Need(t, clusterErr); ... }
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The users every cluster has. Each authenticates with its own bearer token
// (RESTConfig, Kubeconfig, Token); none but Admin is granted anything:
// tests bind the roles they are testing.
const (
	// Admin is in system:masters: allowed everything, RBAC or not.
	Admin = "admin"
	// Failoverd stands for the daemon's identity (no groups).
	Failoverd = "failoverd"
	// Approver stands for a person who approves migrations (no groups).
	Approver = "approver"
	// Reader is a read-only person (no groups).
	Reader = "reader"
)

var userGroups = map[string][]string{
	Admin:     {"system:masters"},
	Failoverd: nil,
	Approver:  nil,
	Reader:    nil,
}

// ErrNotInstalled is returned by StartCluster when etcd or kube-apiserver
// cannot be found.
var ErrNotInstalled = errors.New("kubetest: binaries not installed")

// readyTimeout bounds the wait for /readyz (≈4 s on 2 cores).
const readyTimeout = 90 * time.Second

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// URL is the API server, https://127.0.0.1:<port>.
	URL string
	// CAFile is the PEM the server's certificate chains to (the
	// self-signed pair kube-apiserver generates in its --cert-dir).
	CAFile string
	// Dir holds etcd's data, the certificates, tokens.csv, logs and the
	// kubeconfig files.
	Dir string

	tokens  map[string]string
	ownDir  bool
	kcMu    sync.Mutex
	kcPaths map[string]string
	procs   []*proc
	stopped sync.Once
}

// Start starts a cluster for one test and stops it when the test ends. It
// skips the test when the binaries are missing (fails it when
// FAILOVERD_E2E_REQUIRED is set).
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster(t.TempDir())
	Need(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

// Need ends the test when err (from StartCluster) is not nil: a skip for
// missing binaries unless FAILOVERD_E2E_REQUIRED is set, a failure otherwise.
func Need(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("FAILOVERD_E2E_REQUIRED") == "" {
		t.Skip(err.Error())
	}
	t.Fatal(err)
}

// Binaries finds kube-apiserver and etcd, or returns an error wrapping
// ErrNotInstalled that says how to get them.
func Binaries() (apiserver, etcd string, err error) {
	var dirs []string
	if d := os.Getenv("FAILOVERD_TOOLS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := defaultToolsBin(); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "kube-apiserver")
		if st, e := os.Stat(p); e == nil && !st.IsDir() {
			apiserver = p
			break
		}
	}
	if apiserver == "" {
		if p, e := exec.LookPath("kube-apiserver"); e == nil {
			apiserver = p
		}
	}
	etcd, _ = exec.LookPath("etcd")
	var missing []string
	if apiserver == "" {
		missing = append(missing, "kube-apiserver (build it with `make tools` and set FAILOVERD_TOOLS_BIN=$(tools/build.sh))")
	}
	if etcd == "" {
		missing = append(missing, "etcd on PATH (apt-get install etcd-server)")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%w: need %s", ErrNotInstalled, strings.Join(missing, " and "))
	}
	return apiserver, etcd, nil
}

// defaultToolsBin is where tools/build.sh puts binaries by default.
func defaultToolsBin() string {
	if d := os.Getenv("FAILOVERD_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "bin")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "failoverd", "tools", "bin")
}

// StartCluster starts etcd and kube-apiserver with their state in dir (a
// new temporary directory, removed by Stop, when dir is ""), and returns
// once /readyz answers 200. Stop it with Stop.
func StartCluster(dir string) (*Cluster, error) {
	apiserver, etcd, err := Binaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, tokens: map[string]string{}}
	if dir == "" {
		if c.Dir, err = os.MkdirTemp("", "kubetest-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	// A free port found by listening and closing can be taken by someone
	// else before the server binds it: try again with new ports.
	for attempt := 1; ; attempt++ {
		err = c.start(apiserver, etcd, attempt)
		if err == nil {
			return c, nil
		}
		c.kill()
		if attempt == 3 || !errors.Is(err, errExited) {
			_ = c.Stop()
			return nil, err
		}
	}
}

var errExited = errors.New("exited before it was ready")

func (c *Cluster) start(apiserver, etcd string, attempt int) error {
	run := filepath.Join(c.Dir, "run"+strconv.Itoa(attempt))
	certDir := filepath.Join(run, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	ep, err := c.spawn("etcd", filepath.Join(run, "etcd.log"), etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(run, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync",
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(ep, http.DefaultClient, etcdURL+"/health", "", 30*time.Second); err != nil {
		return err
	}

	saKey, saPub := filepath.Join(run, "sa.key"), filepath.Join(run, "sa.pub")
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		return err
	}
	tokensCSV := filepath.Join(run, "tokens.csv")
	if err := c.writeTokens(tokensCSV); err != nil {
		return err
	}
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	c.CAFile = filepath.Join(certDir, "apiserver.crt")
	ap, err := c.spawn("kube-apiserver", filepath.Join(run, "kube-apiserver.log"), apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+certDir,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--token-auth-file="+tokensCSV,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
	)
	if err != nil {
		return err
	}
	// The serving certificate is written before the port opens; until then
	// the probe cannot verify it and just retries.
	return waitHTTP(ap, &http.Client{Transport: &caTransport{file: c.CAFile}}, c.URL+"/readyz", c.tokens[Admin], readyTimeout)
}

// Stop kills kube-apiserver and etcd and removes the directory StartCluster
// created. It is safe to call more than once, and on a nil Cluster.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	var err error
	c.stopped.Do(func() {
		c.kill()
		if c.ownDir {
			err = os.RemoveAll(c.Dir)
		}
	})
	return err
}

func (c *Cluster) kill() {
	// The state is throwaway: no graceful shutdown, newest process first.
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].kill()
	}
	c.procs = nil
}

// Users lists the users the cluster knows.
func (c *Cluster) Users() []string {
	users := make([]string, 0, len(c.tokens))
	for u := range c.tokens {
		users = append(users, u)
	}
	sort.Strings(users)
	return users
}

// Token is the bearer token of user; it panics for an unknown user.
func (c *Cluster) Token(user string) string {
	tok, ok := c.tokens[user]
	if !ok {
		panic(fmt.Sprintf("kubetest: unknown user %q (known: %s)", user, strings.Join(c.Users(), ", ")))
	}
	return tok
}

// RESTConfig is a client configuration for user: bearer token, server
// certificate verified against CAFile.
func (c *Cluster) RESTConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             -1, // no client-side throttling in tests
	}
}

// Clientset is a typed client for user.
func (c *Cluster) Clientset(user string) (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.RESTConfig(user))
}

// RESTConfigForToken is a client configuration for any bearer token, e.g.
// a ServiceAccount's from the TokenRequest API (the cluster signs them).
func (c *Cluster) RESTConfigForToken(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             -1,
	}
}

// Kubeconfig writes a kubeconfig file for user (one context, named after
// the user and current) into the cluster's directory, once, and returns its
// path.
func (c *Cluster) Kubeconfig(user string) string {
	c.kcMu.Lock()
	defer c.kcMu.Unlock()
	if p, ok := c.kcPaths[user]; ok {
		return p
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthority: c.CAFile}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: c.Token(user)}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = user
	path := filepath.Join(c.Dir, "kubeconfig-"+user)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		// Only a broken temporary directory gets here.
		panic(fmt.Sprintf("kubetest: write kubeconfig: %v", err))
	}
	if c.kcPaths == nil {
		c.kcPaths = map[string]string{}
	}
	c.kcPaths[user] = path
	return path
}

// CreateNamespace creates a namespace and its "default" ServiceAccount (no
// controller-manager creates it, and pods cannot be created without it), as
// Admin; existing ones are fine.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	cs, err := c.Clientset(Admin)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	_, err = cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create serviceaccount %s/default: %w", name, err)
	}
	return nil
}

// writeTokens writes tokens.csv (token,user,uid,"group,...") with a fresh
// random token per user.
func (c *Cluster) writeTokens(path string) error {
	var b strings.Builder
	users := make([]string, 0, len(userGroups))
	for u := range userGroups {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		tok, ok := c.tokens[u]
		if !ok {
			raw := make([]byte, 16)
			if _, err := rand.Read(raw); err != nil {
				return err
			}
			tok = hex.EncodeToString(raw)
			c.tokens[u] = tok
		}
		fmt.Fprintf(&b, "%s,%s,%s", tok, u, u)
		if g := userGroups[u]; len(g) > 0 {
			fmt.Fprintf(&b, ",%q", strings.Join(g, ","))
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// writeServiceAccountKeys writes the key pair that signs and verifies
// service-account tokens (TokenRequest works; there is no token controller).
func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// proc is a started server process with its log file.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (c *Cluster) spawn(name, logPath, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited says how the process ended, with the end of its log.
func (p *proc) exited() error {
	return fmt.Errorf("%s %w (%v); last lines of %s:\n%s", p.name, errExited, p.err, p.log, tail(p.log, 30))
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(p *proc, client *http.Client, url, token string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-p.done:
			return p.exited()
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := client.Do(req.WithContext(ctx))
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (%s); last lines of %s:\n%s", p.name, timeout, last, p.log, tail(p.log, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caTransport trusts the PEM in file, read on each dial attempt because the
// server writes it only when it starts.
type caTransport struct{ file string }

func (t *caTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pemBytes, err := os.ReadFile(t.file)
	if err != nil {
		return nil, fmt.Errorf("server certificate not written yet: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no certificate in %s yet", t.file)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	return tr.RoundTrip(req)
}
