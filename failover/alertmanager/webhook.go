// Package alertmanager is failoverd's side of Alertmanager: it decodes webhook
// deliveries, maps them to observations and heartbeats, and posts failoverd's
// own alerts back through the operator's Alertmanager.
package alertmanager

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// Decode errors, checked with errors.Is. Both mean the sender is wrong and a
// retry of the same body cannot succeed, so the HTTP layer answers 400.
var (
	// ErrBadPayload: the body is not a valid webhook message.
	ErrBadPayload = errors.New("bad alertmanager payload")
	// ErrVersion: the message is of a webhook version this package does not speak.
	ErrVersion = errors.New("unsupported alertmanager webhook version")
)

// SupportedVersion is the webhook payload version Decode accepts.
const SupportedVersion = "4"

// Message is an Alertmanager webhook (version 4) delivery.
type Message struct {
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []Alert           `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	// TruncatedAlerts counts alerts Alertmanager left out because of the
	// receiver's max_alerts; they never reach us.
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// Alert is one alert of a delivery.
type Alert struct {
	Status       failover.AlertStatus `json:"status"`
	Labels       map[string]string    `json:"labels"`
	Annotations  map[string]string    `json:"annotations"`
	StartsAt     time.Time            `json:"startsAt"`
	EndsAt       time.Time            `json:"endsAt"`
	GeneratorURL string               `json:"generatorURL"`
	Fingerprint  string               `json:"fingerprint"`
}

// Decode parses and validates a webhook body. Unknown fields are tolerated so
// that a newer Alertmanager adding fields does not break deliveries. After a
// successful Decode every alert has a valid status, an alertname label and a
// fingerprint.
func Decode(data []byte) (*Message, error) {
	msg := new(Message)
	if err := json.Unmarshal(data, msg); err != nil {
		return nil, jsonError(err)
	}
	if msg.Version != SupportedVersion {
		return nil, fmt.Errorf("%w: got version %q, support version %q", ErrVersion, msg.Version, SupportedVersion)
	}
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		switch a.Status {
		case failover.AlertFiring, failover.AlertResolved:
		default:
			return nil, fmt.Errorf("%w: alerts[%d].status: %q is neither %q nor %q",
				ErrBadPayload, i, a.Status, failover.AlertFiring, failover.AlertResolved)
		}
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("%w: alerts[%d].labels: no labels", ErrBadPayload, i)
		}
		if a.Labels[labelAlertName] == "" {
			return nil, fmt.Errorf("%w: alerts[%d].labels: no %s label", ErrBadPayload, i, labelAlertName)
		}
		if a.Fingerprint == "" {
			a.Fingerprint = Fingerprint(a.Labels)
		}
	}
	return msg, nil
}

const labelAlertName = "alertname"

// jsonError keeps the byte offset of the failure in the message: it is what
// lets whoever wrote the sender's template find their mistake.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: at offset %d: %w", ErrBadPayload, syn.Offset, err)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: at offset %d: %w", ErrBadPayload, typ.Offset, err)
	default:
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
}

// Fingerprint identifies an alert by its label set. It is the same function
// Alertmanager uses (FNV-64a over the sorted names and values, each followed
// by a 0xff separator, as 16 hex digits), so an alert we fingerprint ourselves
// matches the fingerprint Alertmanager would have sent, and two HA peers agree.
func Fingerprint(labels map[string]string) string {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
		sep      = 0xff
	)
	add := func(h uint64, s string) uint64 {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime64
		}
		return h
	}
	// Alerts rarely carry more than a dozen labels: sort on the stack.
	var buf [16]string
	names := buf[:0]
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	h := uint64(offset64)
	for _, n := range names {
		h = add(h, n)
		h = (h ^ sep) * prime64
		h = add(h, labels[n])
		h = (h ^ sep) * prime64
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return hex.EncodeToString(b[:])
}
