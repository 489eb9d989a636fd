//go:build linux || darwin

package agent

import (
	"fmt"
	"syscall"
)

// diskFree is the space on path's filesystem available to unprivileged users.
func diskFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:gosec // sizes are never negative
}
