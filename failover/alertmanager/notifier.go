package alertmanager

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// The alerts failoverd raises about itself, so the operator's own routing
// pages them. They carry no failover label: failoverd never acts on them.
const (
	AlertStandbyReady   = "FailoverdStandbyReady"
	AlertIncidentFailed = "FailoverdIncidentFailed"
)

// notifyTTL is how long a posted alert stays firing without being posted
// again. The engine re-posts well within it while the state lasts, so a
// failoverd that dies leaves a page that expires rather than one that lies
// for ever.
const notifyTTL = time.Hour

// Notifier posts failoverd's own alerts about an incident to Alertmanager.
type Notifier struct {
	client      *Client
	labels      map[string]string
	externalURL string
	now         func() time.Time
}

// NewNotifier builds a notifier. labels are added to every alert;
// externalURL becomes the alerts' generatorURL.
func NewNotifier(c *Client, labels map[string]string, externalURL string) *Notifier {
	return &Notifier{client: c, labels: labels, externalURL: externalURL, now: time.Now}
}

// Notify posts the ready and failed alerts of the incident: firing for the
// state it is in, resolved for the other, so that leaving a state clears its page.
func (n *Notifier) Notify(ctx context.Context, inc failover.Incident) error {
	return n.client.Post(ctx, n.alerts(inc))
}

func (n *Notifier) alerts(inc failover.Incident) []PostableAlert {
	t := n.now().UTC()
	mk := func(name, severity string, firing bool, summary string) PostableAlert {
		l := maps.Clone(n.labels)
		if l == nil {
			l = map[string]string{}
		}
		l["alertname"] = name
		l["severity"] = severity
		l["validator"] = inc.Validator
		l["site"] = inc.Site
		l["incident"] = inc.ID
		a := PostableAlert{
			Labels: l,
			Annotations: map[string]string{
				"summary":     summary,
				"description": inc.Reason,
			},
			StartsAt:     inc.UpdatedAt,
			EndsAt:       t,
			GeneratorURL: n.externalURL + "/v1/incidents/" + inc.ID,
		}
		if firing {
			a.EndsAt = t.Add(notifyTTL)
		}
		return a
	}
	standby := "-"
	if inc.Standby != nil {
		standby = inc.Standby.Name
	}
	return []PostableAlert{
		mk(AlertStandbyReady, "warning", inc.State == failover.StateReady,
			fmt.Sprintf("Standby %s for validator %s is synced and ready; a person may approve a migration (failoverd incidents show %s)", standby, inc.Validator, inc.ID)),
		mk(AlertIncidentFailed, "critical", inc.State == failover.StateFailed,
			fmt.Sprintf("Incident %s for validator %s failed and waits for a person (failoverd incidents show %s)", inc.ID, inc.Validator, inc.ID)),
	}
}
