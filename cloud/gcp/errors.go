package gcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/googleapi"

	"github.com/failoverd/failoverd/cloud"
)

// OperationError is a Compute Engine operation that finished (status DONE)
// with errors. The provider wraps it in a *cloud.Error whose Kind says what
// the engine may do about it; errors.As gets the codes back.
type OperationError struct {
	// Operation is the operation's name, Type its operationType ("insert", "delete").
	Operation string
	Type      string
	// Codes are the error codes in the order GCP lists them, e.g.
	// ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED, RESOURCE_ALREADY_EXISTS.
	Codes    []string
	Messages []string
	// HTTPStatus is the operation's httpErrorStatusCode (0 when absent).
	HTTPStatus int
}

func (e *OperationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "operation %s", e.Operation)
	if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	b.WriteString(" failed")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " with HTTP %d", e.HTTPStatus)
	}
	for i, c := range e.Codes {
		fmt.Fprintf(&b, "; %s: %s", c, e.Messages[i])
	}
	return b.String()
}

// operationError returns the operation's error, or nil when it has none.
func operationError(op *computepb.Operation) error {
	errs := op.GetError().GetErrors()
	status := int(op.GetHttpErrorStatusCode())
	if len(errs) == 0 && (status == 0 || (status >= 200 && status <= 299)) {
		return nil
	}
	e := &OperationError{Operation: op.GetName(), Type: op.GetOperationType(), HTTPStatus: status}
	for _, x := range errs {
		e.Codes = append(e.Codes, x.GetCode())
		e.Messages = append(e.Messages, x.GetMessage())
	}
	if len(errs) == 0 {
		e.Codes = []string{"HTTP_" + fmt.Sprint(status)}
		e.Messages = []string{op.GetHttpErrorMessage()}
	}
	return e
}

// Operation error codes that mean "this zone has no machines for you now".
// GCP reports a stockout as ZONE_RESOURCE_POOL_EXHAUSTED or
// ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS (sometimes with "stockout" in
// the message).
func isCapacityCode(code, msg string) bool {
	c := strings.ToUpper(code)
	return strings.Contains(c, "RESOURCE_POOL_EXHAUSTED") || strings.Contains(c, "STOCKOUT") ||
		strings.Contains(strings.ToLower(msg), "stockout")
}

// kindOf classifies an error from the SDK or an operation into one of the
// cloud sentinel errors. It does not look at context errors (classify does).
func kindOf(err error) error {
	var oe *OperationError
	if errors.As(err, &oe) {
		return operationKind(oe)
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return httpKind(ge)
	}
	// Network failures (connection refused/reset, EOF, TLS handshake
	// timeouts) never reached a verdict from GCP: try again.
	return cloud.ErrTransient
}

func operationKind(oe *OperationError) error {
	for i, c := range oe.Codes {
		if isCapacityCode(c, oe.Messages[i]) {
			return cloud.ErrCapacity
		}
	}
	for _, c := range oe.Codes {
		switch strings.ToUpper(c) {
		case "QUOTA_EXCEEDED", "QUOTA_EXCEEDED_WITH_DETAILS", "REGION_QUOTA_EXCEEDED":
			return cloud.ErrQuota
		case "RESOURCE_NOT_FOUND", "NOT_FOUND":
			return cloud.ErrNotFound
		case "RATE_LIMIT_EXCEEDED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "RESOURCE_NOT_READY",
			"RESOURCE_OPERATION_RATE_EXCEEDED", "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE":
			return cloud.ErrTransient
		}
	}
	switch s := oe.HTTPStatus; {
	case s == http.StatusNotFound:
		return cloud.ErrNotFound
	case s == http.StatusTooManyRequests || s >= 500 || s == 0:
		return cloud.ErrTransient
	default:
		return cloud.ErrPermanent
	}
}

func reasons(ge *googleapi.Error) []string {
	var rs []string
	for _, e := range ge.Errors {
		rs = append(rs, e.Reason)
	}
	return rs
}

func httpKind(ge *googleapi.Error) error {
	rs := reasons(ge)
	for _, r := range rs {
		if isCapacityCode(r, "") {
			return cloud.ErrCapacity
		}
	}
	if isCapacityCode("", ge.Message) {
		return cloud.ErrCapacity
	}
	for _, r := range rs {
		switch r {
		case "quotaExceeded", "QUOTA_EXCEEDED":
			return cloud.ErrQuota
		case "rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED", "resourceNotReady", "backendError", "internalError":
			return cloud.ErrTransient
		}
	}
	switch c := ge.Code; {
	case c == http.StatusNotFound:
		return cloud.ErrNotFound
	case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500:
		return cloud.ErrTransient
	case c == http.StatusPreconditionFailed: // conditionNotMet: a fingerprint race
		return cloud.ErrTransient
	default: // 400 invalid, 401, 403 forbidden/permission, 409 conflicts we did not expect
		return cloud.ErrPermanent
	}
}

// isAlreadyExists reports a 409 alreadyExists, or an operation that failed
// with RESOURCE_ALREADY_EXISTS.
func isAlreadyExists(err error) bool {
	var oe *OperationError
	if errors.As(err, &oe) {
		for _, c := range oe.Codes {
			if c == "RESOURCE_ALREADY_EXISTS" || c == "ALREADY_EXISTS" {
				return true
			}
		}
		return false
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code == http.StatusConflict {
			return true
		}
		for _, r := range reasons(ge) {
			if r == "alreadyExists" {
				return true
			}
		}
	}
	return false
}

// isNotFound reports an HTTP 404 / notFound or an operation that failed with
// RESOURCE_NOT_FOUND.
func isNotFound(err error) bool {
	return err != nil && !isCtxErr(err) && errors.Is(kindOf(err), cloud.ErrNotFound)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// classify turns err from the call op into what callers see: the caller's
// own cancellation wraps context.Canceled (and nothing else, so the engine
// can tell shutdown from a cloud failure); everything else is a *cloud.Error
// with a Kind. ctx is the caller's context.
func classify(ctx context.Context, op, zone string, err error) error {
	if err == nil {
		return nil
	}
	var ce *cloud.Error
	if errors.As(err, &ce) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.Canceled) {
			return fmt.Errorf("%s %s: %w", ProviderName, op, errors.Join(cerr, err))
		}
		return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrTransient, Err: errors.Join(cerr, err)}
	}
	if errors.Is(err, context.Canceled) {
		// Cancelled below us without our ctx being cancelled: treat as a
		// transient failure but keep the cause visible.
		return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrTransient, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrTransient, Err: err}
	}
	return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: kindOf(err), Err: err}
}
