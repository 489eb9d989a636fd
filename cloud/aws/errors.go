package aws

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/failoverd/failoverd/cloud"
)

// EC2 error codes by the kind of cloud error they are.
var (
	capacityCodes = map[string]bool{
		"InsufficientInstanceCapacity":         true,
		"InsufficientHostCapacity":             true,
		"InsufficientCapacity":                 true,
		"InsufficientReservedInstanceCapacity": true,
		"InsufficientFreeAddressesInSubnet":    true,
		"Unsupported":                          true, // the zone does not offer the instance type
	}
	quotaCodes = map[string]bool{
		"InstanceLimitExceeded":              true,
		"VcpuLimitExceeded":                  true,
		"MaxSpotInstanceCountExceeded":       true,
		"VolumeLimitExceeded":                true,
		"SecurityGroupLimitExceeded":         true,
		"RulesPerSecurityGroupLimitExceeded": true,
	}
	transientCodes = map[string]bool{
		"RequestLimitExceeded": true,
		"Throttling":           true,
		"ThrottlingException":  true,
		"ServiceUnavailable":   true,
		"Unavailable":          true,
		"InternalError":        true,
		"InternalFailure":      true,
		"RequestTimeout":       true,
		"IncorrectState":       true,
		"DependencyViolation":  true,
		"VolumeInUse":          true,
	}
	notFoundCodes = map[string]bool{
		"InvalidInstanceID.NotFound": true,
		"InvalidGroup.NotFound":      true,
		"InvalidVolume.NotFound":     true,
	}
)

// apiCode is the EC2 error code of err, "" when err is not an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// kindOf maps an error to one of cloud's sentinel kinds.
func kindOf(err error) error {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return cloud.ErrTransient
	}
	code := apiCode(err)
	switch {
	case code == "":
		// No answer from EC2 (network, the SDK's retry quota, a body that
		// did not parse): the same call may well work later.
		return cloud.ErrTransient
	case capacityCodes[code]:
		return cloud.ErrCapacity
	case quotaCodes[code]:
		return cloud.ErrQuota
	case transientCodes[code]:
		return cloud.ErrTransient
	case notFoundCodes[code]:
		return cloud.ErrNotFound
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return cloud.ErrTransient
	}
	// Any other EC2 client error: UnauthorizedOperation, AuthFailure,
	// InvalidParameterValue, InvalidAMIID.*, MissingParameter, OptInRequired…
	// The same request fails the same way again.
	return cloud.ErrPermanent
}

// fail wraps err as a *cloud.Error (a cancelled or expired context stays
// visible to errors.Is through the cause).
func (p *Provider) fail(op, zone string, err error) error {
	if err == nil {
		return nil
	}
	var ce *cloud.Error
	if errors.As(err, &ce) {
		return err
	}
	return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: kindOf(err), Err: err}
}

func (p *Provider) permanent(op, zone, msg string) error {
	return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrPermanent, Err: errors.New(msg)}
}

// tokenNamespace is the UUID namespace of failoverd's AWS client tokens.
var tokenNamespace = [16]byte{0x6f, 0x1c, 0x0a, 0x7e, 0x5b, 0x3d, 0x4c, 0x52, 0x9a, 0x11, 0x2f, 0x8e, 0x40, 0xd3, 0x77, 0x09}

// uuid5 is a name-based UUID (RFC 9562 version 5, SHA-1).
func uuid5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// clientToken is the RunInstances ClientToken of a standby's launch in a
// zone: the same for every attempt, in every process, 36 ASCII characters.
func clientToken(incidentID, name, zone string) string {
	return uuid5(tokenNamespace, "run-instances\x00"+incidentID+"\x00"+name+"\x00"+zone)
}

// nextToken is the token to use after the instance launched for token died.
func nextToken(token, deadInstanceID string) string {
	return uuid5(tokenNamespace, "after\x00"+token+"\x00"+deadInstanceID)
}
