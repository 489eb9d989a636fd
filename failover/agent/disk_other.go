//go:build !linux && !darwin

package agent

import (
	"errors"
	"runtime"
)

func diskFree(string) (uint64, error) {
	return 0, errors.New("disk free is not measured on " + runtime.GOOS)
}
