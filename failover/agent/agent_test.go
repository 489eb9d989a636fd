package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/pki"
)

const standbyName = "fo-inc-42"

type fixture struct {
	dir    string // the authority's directory
	ca     *pki.Authority
	beacon *agenttest.Beacon
	exec   *agenttest.Execution
	addr   string
	client *agent.Client
}

func (f *fixture) standby() cloud.Standby {
	return cloud.Standby{Name: standbyName, Provider: "test", State: cloud.StateRunning, Address: f.addr}
}

func newFixture(t *testing.T, o agent.Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	var err error
	if f.ca, err = pki.LoadOrCreate(f.dir); err != nil {
		t.Fatal(err)
	}
	f.beacon = agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	f.exec = agenttest.NewExecution(t, agenttest.SyncedExecution())
	o.BeaconURL, o.ExecutionURL = f.beacon.URL, f.exec.URL
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	o.Version = "test"
	f.addr = agenttest.StartAgent(t, f.ca, standbyName, o)
	if f.client, err = agent.NewClient(f.ca, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) status(t *testing.T) cloud.SyncStatus {
	t.Helper()
	st, err := f.client.SyncStatus(context.Background(), f.standby())
	if err != nil {
		t.Fatalf("SyncStatus: %v", err)
	}
	return st
}

func TestReadyWhenEverythingHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agent.Options{})
	st := f.status(t)
	if !st.Ready() {
		t.Fatalf("not ready: %v (%+v)", st.NotReady(), st)
	}
	if st.Health != 200 || st.Peers != 80 || st.ExecutionPeers != 50 || st.SyncDistance != 0 || st.DiskFreeBytes == 0 {
		t.Fatalf("mapped status %+v", st)
	}
	if st.ClockOffset > 200*time.Millisecond || st.ClockOffset < -200*time.Millisecond {
		t.Fatalf("clock offset %v with the same clock", st.ClockOffset)
	}
	raw, _, err := f.client.Status(context.Background(), f.standby())
	if err != nil {
		t.Fatal(err)
	}
	if raw.Version != "test" || raw.DiskPath == "" || raw.Time.IsZero() || raw.Consensus.HeadSlot != 12_345_678 {
		t.Fatalf("raw status %+v", raw)
	}
	for _, p := range []string{"/eth/v1/node/syncing", "/eth/v1/node/health", "/eth/v1/node/peer_count"} {
		if f.beacon.Hits(p) == 0 {
			t.Errorf("agent never asked %s", p)
		}
	}
	for _, m := range []string{"eth_syncing", "net_peerCount"} {
		if f.exec.Calls(m) == 0 {
			t.Errorf("agent never called %s", m)
		}
	}
}

func TestEveryReadinessCondition(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(*fixture)
		want  []string // each must be among NotReady()
		check func(*testing.T, cloud.SyncStatus, agent.Status)
	}{
		{"execution syncing", func(f *fixture) {
			f.exec.Update(func(s *agenttest.ExecutionState) { s.Syncing, s.CurrentBlock, s.HighestBlock = true, 100, 200 })
		}, []string{"execution client syncing"}, func(t *testing.T, _ cloud.SyncStatus, raw agent.Status) {
			if raw.Execution.CurrentBlock != 100 || raw.Execution.HighestBlock != 200 {
				t.Errorf("blocks %d/%d", raw.Execution.CurrentBlock, raw.Execution.HighestBlock)
			}
		}},
		{"beacon syncing", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.IsSyncing, s.SyncDistance = true, 5000 })
		}, []string{"beacon node syncing", "beacon node 5000 slots behind", "beacon health 206"}, nil},
		{"optimistic", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.IsOptimistic = true })
		}, []string{"beacon node optimistic", "beacon health 206"}, nil},
		{"el offline", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.ELOffline = true })
		}, []string{"beacon node reports its execution client offline"}, nil},
		{"distance 2", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.SyncDistance = 2 })
		}, []string{"beacon node 2 slots behind"}, nil},
		{"health 206", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.Health = 206 })
		}, []string{"beacon health 206"}, nil},
		{"health 503", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.Health = 503 })
		}, []string{"beacon health 503"}, nil},
		{"health unknown code", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.Health = 418 })
		}, []string{"beacon health 418", "beacon node syncing"}, nil},
		{"beacon no peers", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.Peers = 0 })
		}, []string{"beacon node has 0 peers"}, nil},
		{"execution no peers", func(f *fixture) {
			f.exec.Update(func(s *agenttest.ExecutionState) { s.Peers = 0 })
		}, []string{"execution client has 0 peers"}, nil},
		{"execution down", func(f *fixture) { f.exec.Close() },
			[]string{"execution client syncing", "execution client has 0 peers"},
			func(t *testing.T, _ cloud.SyncStatus, raw agent.Status) {
				if !strings.Contains(raw.Execution.Error, "eth_syncing") {
					t.Errorf("execution error %q", raw.Execution.Error)
				}
			}},
		{"execution 500", func(f *fixture) {
			f.exec.Update(func(s *agenttest.ExecutionState) { s.Fail = 500 })
		}, []string{"execution client syncing"}, nil},
		{"beacon down", func(f *fixture) { f.beacon.Close() },
			[]string{"beacon node syncing", "beacon health 0", "beacon node has 0 peers"},
			func(t *testing.T, _ cloud.SyncStatus, raw agent.Status) {
				if !strings.Contains(raw.Consensus.Error, "/eth/v1/node/syncing") {
					t.Errorf("consensus error %q", raw.Consensus.Error)
				}
			}},
		{"beacon 500", func(f *fixture) {
			f.beacon.Update(func(s *agenttest.BeaconState) { s.Fail = 500 })
		}, []string{"beacon node syncing"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, agent.Options{})
			tc.setup(f)
			raw, offset, err := f.client.Status(context.Background(), f.standby())
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			st := raw.SyncStatus(offset)
			why := st.NotReady()
			if st.Ready() {
				t.Fatalf("ready, want not ready: %+v", raw)
			}
			for _, w := range tc.want {
				if !slices.Contains(why, w) {
					t.Errorf("NotReady() = %q, want it to include %q", why, w)
				}
			}
			if tc.check != nil {
				tc.check(t, st, raw)
			}
			// The same through the SyncReporter interface.
			var r cloud.SyncReporter = f.client
			st2, err := r.SyncStatus(context.Background(), f.standby())
			if err != nil || st2.Ready() {
				t.Fatalf("SyncStatus: %v ready=%v", err, st2.Ready())
			}
		})
	}
}

func TestReadinessComesBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agent.Options{})
	f.beacon.Update(func(s *agenttest.BeaconState) { s.IsSyncing = true })
	if f.status(t).Ready() {
		t.Fatal("ready while syncing")
	}
	f.beacon.Set(agenttest.SyncedBeacon())
	if st := f.status(t); !st.Ready() {
		t.Fatalf("not ready after sync: %v", st.NotReady())
	}
}

func TestClockOffset(t *testing.T) {
	t.Parallel()
	// A slow beacon node must not look like a clock offset.
	f := newFixture(t, agent.Options{Now: func() time.Time { return time.Now().Add(2 * time.Second) }})
	st := f.status(t)
	if d := st.ClockOffset - 2*time.Second; d > 200*time.Millisecond || d < -200*time.Millisecond {
		t.Fatalf("clock offset %v, want 2s ± 200ms", st.ClockOffset)
	}
	if st.Ready() || !strings.HasPrefix(st.NotReady()[0], "clock off by") {
		t.Fatalf("NotReady() = %q", st.NotReady())
	}

	g := newFixture(t, agent.Options{Now: func() time.Time { return time.Now().Add(-3 * time.Second) }})
	if st := g.status(t); st.ClockOffset > -2800*time.Millisecond || st.ClockOffset < -3200*time.Millisecond {
		t.Fatalf("clock offset %v, want -3s ± 200ms", st.ClockOffset)
	}
}

// mtls makes an HTTPS client for the fixture's agent with the given client
// certificates.
// The certificate is sent whatever CAs the agent says it accepts.
func (f *fixture) mtls(serverName string, certs ...tls.Certificate) *http.Client {
	conf := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: f.ca.Pool(), ServerName: serverName}
	if len(certs) > 0 {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: conf,
	}}
}

func (f *fixture) get(t *testing.T, c *http.Client, method, path string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://"+f.addr+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

func (f *fixture) post(t *testing.T, c *http.Client, path, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://"+f.addr+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

// issue signs a certificate with the fixture's CA key, as an attacker who
// somehow got another certificate from the CA would hold.
func (f *fixture) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(f.dir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(f.ca.CAPEM())
	caCert, _ := x509.ParseCertificate(cb.Bytes)
	pub, priv, _ := ed25519.GenerateKey(nil)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(nil, tmpl, caCert, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

func TestSecurity(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agent.Options{})
	own, err := f.ca.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("failoverd's certificate is admitted", func(t *testing.T) {
		resp, _, err := f.get(t, f.mtls(standbyName, own), http.MethodGet, "/v1/status")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("err %v resp %v", err, resp)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		// The handshake succeeds (a key import comes from an approver's
		// machine, without one), but every route that is failoverd's refuses.
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/v1/status"}, {http.MethodPost, "/v1/clients/stop"},
			{http.MethodPost, "/v1/chain"}, {http.MethodPost, "/v1/keys/fence"},
		} {
			resp, _, err := f.get(t, f.mtls(standbyName), r.method, r.path)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s answered %d without a client certificate", r.method, r.path, resp.StatusCode)
			}
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		other, err := pki.LoadOrCreate(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		oc, _ := other.ClientCertificate()
		if resp, _, err := f.get(t, f.mtls(standbyName, oc), http.MethodGet, "/v1/status"); err == nil {
			t.Fatalf("answered %d to another CA's certificate", resp.StatusCode)
		}
		// And failoverd's client of that other CA fails, permanently.
		oclient, _ := agent.NewClient(other, 0)
		_, err = oclient.SyncStatus(context.Background(), f.standby())
		if !errors.Is(err, cloud.ErrPermanent) || errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("other CA's client: %v", err)
		}
	})
	t.Run("right CA, CN not failoverd", func(t *testing.T) {
		c := f.issue(t, "mallory", x509.ExtKeyUsageClientAuth)
		resp, body, err := f.get(t, f.mtls(standbyName, c), http.MethodGet, "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), "execution") {
			t.Fatalf("answered %d %s", resp.StatusCode, body)
		}
	})
	t.Run("a standby's server certificate as a client certificate", func(t *testing.T) {
		certPEM, keyPEM, err := f.ca.StandbyCredentials("fo-other", time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := tls.X509KeyPair(certPEM, keyPEM)
		if resp, _, err := f.get(t, f.mtls(standbyName, c), http.MethodGet, "/v1/status"); err == nil {
			t.Fatalf("answered %d to a server certificate", resp.StatusCode)
		}
	})
	t.Run("client refuses a certificate for another standby", func(t *testing.T) {
		s := f.standby()
		s.Name = "fo-other"
		_, err := f.client.SyncStatus(context.Background(), s)
		if err == nil || !errors.Is(err, cloud.ErrPermanent) || errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("err = %v, want a permanent certificate error", err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + f.addr + "/v1/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 || strings.Contains(string(b), "execution") {
				t.Fatalf("plain HTTP answered %d %s", resp.StatusCode, b)
			}
		}
	})
	t.Run("TLS 1.2", func(t *testing.T) {
		conn, err := tls.Dial("tcp", f.addr, &tls.Config{MaxVersion: tls.VersionTLS12, RootCAs: f.ca.Pool(),
			ServerName: standbyName, Certificates: []tls.Certificate{own}})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.2 handshake succeeded")
		}
	})
	t.Run("no key import without approvers", func(t *testing.T) {
		resp, body, err := f.post(t, f.mtls(standbyName), "/v1/keys", `{"keystores":[]}`)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		if resp.StatusCode != http.StatusNotImplemented || json.Unmarshal(body, &e) != nil ||
			!strings.Contains(fmt.Sprint(e["error"]), "imports no keys") {
			t.Fatalf("POST /v1/keys: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("nothing else", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/"}, {http.MethodGet, "/metrics"}, {http.MethodGet, "/v1/keys"},
			{http.MethodPost, "/v1/status"}, {http.MethodDelete, "/v1/keys"},
		} {
			resp, _, err := f.get(t, f.mtls(standbyName, own), r.method, r.path)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d", r.method, r.path, resp.StatusCode)
			}
		}
	})
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	ca, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.NewClient(ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SyncStatus(context.Background(), cloud.Standby{Name: "fo-x"})
	if !errors.Is(err, cloud.ErrTransient) || !strings.Contains(err.Error(), "no address yet") {
		t.Fatalf("no address: %v", err)
	}

	// Nothing listening: a booting VM.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err = c.SyncStatus(context.Background(), cloud.Standby{Name: "fo-x", Address: addr})
	if !errors.Is(err, cloud.ErrTransient) || errors.Is(err, cloud.ErrPermanent) {
		t.Fatalf("nothing listening: %v", err)
	}

	// Something that accepts and never answers: a timeout, transient.
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c.Timeout = 300 * time.Millisecond
	_, err = c.SyncStatus(context.Background(), cloud.Standby{Name: "fo-x", Address: ln.Addr().String()})
	if !errors.Is(err, cloud.ErrTransient) {
		t.Fatalf("silent peer: %v", err)
	}

	// The port is added to a bare address.
	c2, _ := agent.NewClient(ca, 1)
	_, err = c2.SyncStatus(context.Background(), cloud.Standby{Name: "fo-x", Address: "127.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("bare address: %v", err)
	}
	if _, err := agent.NewClient(nil, 0); err == nil {
		t.Fatal("NewClient(nil) succeeded")
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	t.Parallel()
	ca, _ := pki.LoadOrCreate(t.TempDir())
	dir := t.TempDir()
	creds := agenttest.WriteCredentials(t, ca, standbyName, dir)
	good := agent.Options{Listen: "127.0.0.1:0", CertFile: creds.CertFile, KeyFile: creds.KeyFile,
		ClientCAFile: creds.ClientCAFile, ExecutionURL: "http://127.0.0.1:8545", BeaconURL: "http://127.0.0.1:5052", DataPath: dir}
	cases := map[string]func(*agent.Options){
		"no listen":     func(o *agent.Options) { o.Listen = "" },
		"no cert":       func(o *agent.Options) { o.CertFile = "" },
		"missing cert":  func(o *agent.Options) { o.CertFile = filepath.Join(dir, "nope") },
		"no client CA":  func(o *agent.Options) { o.ClientCAFile = "" },
		"bad client CA": func(o *agent.Options) { o.ClientCAFile = creds.KeyFile },
		"bad beacon":    func(o *agent.Options) { o.BeaconURL = "127.0.0.1:5052" },
		"no data path":  func(o *agent.Options) { o.DataPath = "" },
	}
	for name, mutate := range cases {
		o := good
		mutate(&o)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := agent.Run(ctx, o)
		cancel()
		if err == nil {
			t.Errorf("%s: Run returned nil", name)
		}
	}
	// The good options serve until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := agent.Run(ctx, good); err != nil {
		t.Fatalf("good options: %v", err)
	}
}

// TestCleanStopOfClients: the stop is asked for through a file in the
// control directory (the host acts on it), and the agent reports the stop
// once the host has written its marker; an agent without a control
// directory refuses.
func TestCleanStopOfClients(t *testing.T) {
	a, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	beacon := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	exec := agenttest.NewExecution(t, agenttest.SyncedExecution())
	control := t.TempDir()
	addr := agenttest.StartAgent(t, a, "fo-eth-1-snap-1", agent.Options{BeaconURL: beacon.URL, ExecutionURL: exec.URL, ControlDir: control})
	c, err := agent.NewClient(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := cloud.Standby{Name: "fo-eth-1-snap-1", Address: addr}
	ctx := context.Background()
	stopped, err := c.StopClients(ctx, sb)
	if err != nil || stopped {
		t.Fatalf("first ask: stopped=%v err=%v", stopped, err)
	}
	if _, err := os.Stat(filepath.Join(control, agent.StopRequestedFile)); err != nil {
		t.Fatalf("no stop request for the host: %v", err)
	}
	// The host's path unit stops the units and writes the marker.
	if err := os.WriteFile(filepath.Join(control, agent.ClientsStoppedFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if stopped, err = c.StopClients(ctx, sb); err != nil || !stopped {
		t.Fatalf("after the host stopped them: stopped=%v err=%v", stopped, err)
	}
	st, _, err := c.Status(ctx, sb)
	if err != nil || !st.ClientsStopped {
		t.Fatalf("status: %+v %v", st.ClientsStopped, err)
	}

	plain := agenttest.StartAgent(t, a, "fo-eth-2-1", agent.Options{BeaconURL: beacon.URL, ExecutionURL: exec.URL})
	if _, err := c.StopClients(ctx, cloud.Standby{Name: "fo-eth-2-1", Address: plain}); !errors.Is(err, cloud.ErrPermanent) {
		t.Fatalf("agent without a control dir: %v", err)
	}
}
