package kubetest_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/failoverd/failoverd/failover/kube/kubetest"
)

func TestCluster(t *testing.T) {
	start := time.Now()
	c := kubetest.Start(t)
	t.Logf("cluster ready in %s at %s", time.Since(start).Round(time.Millisecond), c.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := c.Clientset(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.31.0" {
		t.Errorf("server version %q, want v1.31.0 (tools/build.sh sets it with -ldflags; helm's kubeVersion checks need it)", v.GitVersion)
	}

	if err := c.CreateNamespace(ctx, "kt"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateNamespace(ctx, "kt"); err != nil {
		t.Fatalf("second CreateNamespace: %v", err)
	}
	if _, err := admin.CoreV1().Secrets("kt").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// RBAC is on: the other users are authenticated but granted nothing.
	for _, u := range []string{kubetest.Failoverd, kubetest.Approver, kubetest.Reader} {
		cs, err := c.Clientset(u)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cs.CoreV1().Secrets("kt").Get(ctx, "s", metav1.GetOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s get secret: %v, want forbidden", u, err)
		} else if !strings.Contains(err.Error(), `"`+u+`"`) {
			t.Errorf("%s: forbidden error does not name the user: %v", u, err)
		}
	}

	// ServiceAccount tokens are signed and accepted (TokenRequest).
	tr, err := admin.CoreV1().ServiceAccounts("kt").CreateToken(ctx, "default", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(c.RESTConfigForToken(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CoreV1().Secrets("kt").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:serviceaccount:kt:default") {
		t.Errorf("service account list secrets: %v, want forbidden for system:serviceaccount:kt:default", err)
	}

	// The kubeconfig file works, and verifies the server's certificate.
	path := c.Kubeconfig(kubetest.Admin)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Insecure || cfg.CAFile == "" {
		t.Errorf("kubeconfig TLS: insecure=%v ca=%q; want verification against the generated CA", cfg.Insecure, cfg.CAFile)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("kt").Get(ctx, "s", metav1.GetOptions{}); err != nil {
		t.Errorf("admin via kubeconfig: %v", err)
	}
}

func TestStopKillsProcesses(t *testing.T) {
	c, err := kubetest.StartCluster("")
	kubetest.Need(t, err)
	dir := c.Dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		t.Errorf("processes left running after Stop: %s", out)
	}
}
