package fence

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/failoverd/failoverd/failover/kube/kubetest"
)

func TestParseWorkload(t *testing.T) {
	w, err := ParseWorkload("staking/statefulset/lighthouse-vc")
	if err != nil || w.Namespace != "staking" || w.Kind != "statefulset" || w.Name != "lighthouse-vc" {
		t.Fatalf("%+v %v", w, err)
	}
	for _, bad := range []string{"", "lighthouse-vc", "ns/daemonset/x", "ns//x", "/statefulset/x", "a/statefulset/b/c"} {
		if _, err := ParseWorkload(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestScaleToZeroOnRealAPIServer runs the fencer as failoverd's identity with
// exactly the chart's fencing rules: the scale of the named workload and a
// list of pods. A pod that is left refuses the fence.
func TestScaleToZeroOnRealAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	admin, err := c.Clientset(kubetest.Admin)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "staking"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager: the default ServiceAccount a pod needs is the test's to make.
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "lighthouse-vc"}
	one := int32(1)
	sts := func(name string) *appsv1.StatefulSet {
		l := map[string]string{"app": name}
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{
				Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: l}, ServiceName: name,
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: l},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "vc", Image: "sigp/lighthouse:v8.0.1"}}},
				},
			},
		}
	}
	for _, name := range []string{"lighthouse-vc", "other-vc"} {
		if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, sts(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// No controller runs: the test writes the pod the StatefulSet would have.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lighthouse-vc-0", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "vc", Image: "sigp/lighthouse:v8.0.1"}}}}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The chart's fencing Role (charts/failoverd/templates/rbac.yaml).
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "failoverd-fencing"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets/scale"}, ResourceNames: []string{"lighthouse-vc"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
	}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "failoverd-fencing"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "failoverd-fencing"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: kubetest.Failoverd, APIGroup: "rbac.authorization.k8s.io"}}}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	f, err := New(c.RESTConfig(kubetest.Failoverd), map[string]Workload{
		"eth-1": {Namespace: ns, Kind: "statefulset", Name: "lighthouse-vc"},
		"eth-2": {Namespace: ns, Kind: "statefulset", Name: "other-vc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ScaleToZero(ctx, "eth-1")
	if err == nil || !strings.Contains(err.Error(), "1 pods are left (lighthouse-vc-0)") {
		t.Fatalf("fenced with a pod left: %v", err)
	}
	got, err := admin.AppsV1().StatefulSets(ns).Get(ctx, "lighthouse-vc", metav1.GetOptions{})
	if err != nil || *got.Spec.Replicas != 0 {
		t.Fatalf("not scaled to zero: %v %v", got.Spec.Replicas, err)
	}
	if err := admin.CoreV1().Pods(ns).Delete(ctx, "lighthouse-vc-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	what, err := f.ScaleToZero(ctx, "eth-1")
	if err != nil || !strings.Contains(what, "scaled to zero, no pod left") {
		t.Fatalf("fence after the pod is gone: %q %v", what, err)
	}
	// Least privilege: a workload outside the Role is refused by the API server.
	if _, err := f.ScaleToZero(ctx, "eth-2"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("scaled a workload the Role does not name: %v", err)
	}
	other, _ := admin.AppsV1().StatefulSets(ns).Get(ctx, "other-vc", metav1.GetOptions{})
	if *other.Spec.Replicas != 1 {
		t.Fatal("the other workload changed")
	}
	if _, err := f.ScaleToZero(ctx, "eth-3"); err == nil || !strings.Contains(err.Error(), "no fleet[].home.workload") {
		t.Fatalf("unknown validator: %v", err)
	}
}
