package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/failoverd/failoverd/failover/config"
)

// kubeAccess is how failoverd reaches the Kubernetes API for store.type
// kubernetes: the in-cluster service account, or store.kubeconfig.
func kubeAccess(cfg *config.Config, getenv func(string) string) (*rest.Config, string, error) {
	var rc *rest.Config
	ns := cfg.Store.Namespace
	if cfg.Store.Kubeconfig == "" {
		var err error
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, "", fmt.Errorf("store.type kubernetes: not running in a cluster and store.kubeconfig is empty: %w", err)
		}
	} else {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Store.Kubeconfig}, &clientcmd.ConfigOverrides{})
		var err error
		if rc, err = loader.ClientConfig(); err != nil {
			return nil, "", fmt.Errorf("store.kubeconfig %s: %w", cfg.Store.Kubeconfig, err)
		}
		if ns == "" {
			ns, _, _ = loader.Namespace()
		}
	}
	if ns == "" {
		ns = getenv("POD_NAMESPACE")
	}
	if ns == "" {
		return nil, "", errors.New("store.type kubernetes: no namespace (set store.namespace, or POD_NAMESPACE through the downward API)")
	}
	return rc, ns, nil
}

// leaderIdentity names this replica in the lease: the pod name, else the host.
func leaderIdentity(getenv func(string) string) string {
	if n := getenv("POD_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// lead runs work while this replica holds the lease. Losing the lease ends
// lead with an error: the process exits and starts again as a follower,
// so no in-memory state of a former leader lingers.
func lead(ctx context.Context, rc *rest.Config, ns, id string, cfg *config.Config, log *slog.Logger, work func(context.Context) error) error {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: cfg.Store.LeaseName, Namespace: ns},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	lost := make(chan struct{})
	workErr := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.Store.LeaseDuration,
		RenewDeadline:   cfg.Store.RenewDeadline,
		RetryPeriod:     cfg.Store.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            "failoverd",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading: this replica reconciles now", "identity", id, "lease", ns+"/"+cfg.Store.LeaseName)
				workErr <- work(ctx)
			},
			OnStoppedLeading: func() { close(lost) },
			OnNewLeader: func(leader string) {
				if leader != id {
					log.Info("following: another replica reconciles; this one serves reads and webhooks", "leader", leader)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx) // returns when ctx ends or leadership is lost
	select {
	case err := <-workErr:
		if err != nil {
			return err
		}
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	<-lost
	return errors.New("lost the leader lease; exiting so that this replica restarts as a follower")
}
