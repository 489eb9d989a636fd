package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
)

// Migrator takes approvals and answers who owns a validator's signing right
// (the engine).
type Migrator interface {
	Plan(ctx context.Context, id string) (failover.Plan, error)
	Approve(ctx context.Context, req failover.ApprovalRequest) (failover.ApprovalReply, error)
	Owner(ctx context.Context, validator string) (failover.Ownership, error)
	Owners(ctx context.Context) ([]failover.ValidatorOwner, error)
}

// maxApprovalBody bounds an approval submission: the canonical approval
// (up to a few thousand public keys), a few signatures and the fencing
// evidence. Never keys: those go to the standby, not here.
const maxApprovalBody = 2 << 20

// OwnerList is the body of GET /v1/owners.
type OwnerList struct {
	Owners []failover.ValidatorOwner `json:"owners"`
}

// RefusalReply is the body of a refused approval (409): the code and what to do.
type RefusalReply struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func (h *handler) plan(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p, err := h.o.Migrator.Plan(r.Context(), id)
	if errors.Is(err, failover.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %q not found", id))
		return
	}
	if err != nil {
		h.refusalOrError(w, "plan", err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *handler) approve(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxApprovalBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("approval larger than %d bytes", maxApprovalBody))
			return
		}
		writeError(w, http.StatusBadRequest, "could not read the approval: "+err.Error())
		return
	}
	var req failover.ApprovalRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed approval submission: "+err.Error())
		return
	}
	if req.Incident != id {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the submission names incident %q but was posted to %q", req.Incident, id))
		return
	}
	req.From = r.RemoteAddr
	reply, err := h.o.Migrator.Approve(r.Context(), req)
	if errors.Is(err, failover.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %q not found", id))
		return
	}
	if err != nil {
		h.refusalOrError(w, "approval", err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

func (h *handler) owner(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "validator")
	o, err := h.o.Migrator.Owner(r.Context(), name)
	if errors.Is(err, failover.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("validator %q is not in the fleet", name))
		return
	}
	if err != nil {
		h.storeError(w, "owner", err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (h *handler) owners(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Migrator.Owners(r.Context())
	if err != nil {
		h.storeError(w, "owners", err)
		return
	}
	writeJSON(w, http.StatusOK, OwnerList{Owners: list})
}

// refusalOrError answers a refusal with 409 and its reason, anything else
// as a failure to retry.
func (h *handler) refusalOrError(w http.ResponseWriter, what string, err error) {
	var re *failover.RefusedError
	var ae *approval.RefusalError
	switch {
	case errors.As(err, &re):
		writeJSON(w, http.StatusConflict, RefusalReply{Error: re.Message, Code: re.Code})
	case errors.As(err, &ae):
		writeJSON(w, http.StatusConflict, RefusalReply{Error: ae.Error(), Code: string(ae.Code)})
	default:
		h.storeError(w, what, err)
	}
}

// Plan fetches what an approver signs for an incident.
func (c *Client) Plan(ctx context.Context, id string) (failover.Plan, error) {
	var p failover.Plan
	err := c.do(ctx, http.MethodGet, "/v1/incidents/"+url.PathEscape(id)+"/plan", nil, &p)
	return p, err
}

// Approve submits a signed approval.
func (c *Client) Approve(ctx context.Context, req failover.ApprovalRequest) (failover.ApprovalReply, error) {
	var rep failover.ApprovalReply
	err := c.do(ctx, http.MethodPost, "/v1/incidents/"+url.PathEscape(req.Incident)+"/approvals", req, &rep)
	return rep, err
}

// Owner asks who owns a validator's signing right.
func (c *Client) Owner(ctx context.Context, validator string) (failover.Ownership, error) {
	var o failover.Ownership
	err := c.do(ctx, http.MethodGet, "/v1/owners/"+url.PathEscape(validator), nil, &o)
	return o, err
}

// Owners lists every fleet validator's owner.
func (c *Client) Owners(ctx context.Context) ([]failover.ValidatorOwner, error) {
	var l OwnerList
	err := c.do(ctx, http.MethodGet, "/v1/owners", nil, &l)
	return l.Owners, err
}
