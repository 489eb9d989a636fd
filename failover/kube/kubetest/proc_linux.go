package kubetest

import "syscall"

// sysProcAttr makes the kernel kill the servers when the test binary dies
// (a panic, a timeout, ^C), so no etcd or kube-apiserver outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
