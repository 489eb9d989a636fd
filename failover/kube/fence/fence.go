// Package fence stops a home validator client through the Kubernetes API:
// its workload is scaled to zero and no pod of it may be left (DESIGN.md
// rule 4: unreachable is not stopped; a pod that still exists may still
// sign). It needs only what the chart grants: get and update on the
// workload's /scale, and list on pods in its namespace.
package fence

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
)

// Workload is a home validator client's StatefulSet or Deployment.
type Workload struct {
	Namespace string
	Kind      string // statefulset | deployment
	Name      string
}

func (w Workload) String() string { return w.Namespace + "/" + w.Kind + "/" + w.Name }

// ParseWorkload reads "namespace/kind/name" (config fleet[].home.workload).
func ParseWorkload(s string) (Workload, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" || (parts[1] != "statefulset" && parts[1] != "deployment") {
		return Workload{}, fmt.Errorf("workload %q: want namespace/statefulset/name or namespace/deployment/name", s)
	}
	return Workload{Namespace: parts[0], Kind: parts[1], Name: parts[2]}, nil
}

// Fencer scales validators' home workloads to zero.
type Fencer struct {
	cs        kubernetes.Interface
	workloads map[string]Workload // by validator
}

// New makes a fencer for the validators' workloads.
func New(rc *rest.Config, workloads map[string]Workload) (*Fencer, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("fence: %w", err)
	}
	return &Fencer{cs: cs, workloads: workloads}, nil
}

// ScaleToZero scales the validator's workload to zero replicas and reports
// success only when no pod of it is left. It is idempotent: ask again until
// the pods are gone.
func (f *Fencer) ScaleToZero(ctx context.Context, validator string) (string, error) {
	w, ok := f.workloads[validator]
	if !ok {
		return "", fmt.Errorf("validator %s has no fleet[].home.workload: failoverd cannot scale it", validator)
	}
	// StatefulSets and Deployments share the /scale subresource's shape.
	getScale, updateScale := f.cs.AppsV1().StatefulSets(w.Namespace).GetScale, f.cs.AppsV1().StatefulSets(w.Namespace).UpdateScale
	if w.Kind == "deployment" {
		getScale, updateScale = f.cs.AppsV1().Deployments(w.Namespace).GetScale, f.cs.AppsV1().Deployments(w.Namespace).UpdateScale
	}
	var selector string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := getScale(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		selector = sc.Status.Selector
		if sc.Spec.Replicas == 0 {
			return nil
		}
		sc.Spec.Replicas = 0
		_, err = updateScale(ctx, w.Name, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("scale %s to zero: %w", w, err)
	}
	if selector == "" {
		// Without the selector no pod list can prove anything.
		return "", fmt.Errorf("%s reports no pod selector on its /scale: cannot prove that no pod is left", w)
	}
	pods, err := f.cs.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", fmt.Errorf("list the pods of %s: %w", w, err)
	}
	if n := len(pods.Items); n > 0 {
		names := make([]string, 0, n)
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return "", fmt.Errorf("%s is scaled to zero but %d pods are left (%s); wait until they are gone (kubectl -n %s get pods -l %s) and approve again",
			w, n, strings.Join(names, ", "), w.Namespace, selector)
	}
	return fmt.Sprintf("home workload %s scaled to zero, no pod left", w), nil
}
