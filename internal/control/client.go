package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/identity"
)

// Client calls the control HTTP API. Its errors wrap the same sentinels as
// the Service's (ErrNotReady as *NotReadyError, ErrAlreadyFired, ...), so
// callers treat both paths alike.
type Client struct {
	URL   string // base URL, e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client // nil: a client with a 30 s timeout
}

// Fire presses GO through the API as the token's identity. A lost press
// returns the winner's outcome (Won false) and a nil error, like
// Service.Fire.
func (c *Client) Fire(ctx context.Context, id string, force bool) (FireOutcome, error) {
	var out FireOutcome
	code, body, err := c.post(ctx, id, "fire", request{Force: force})
	if err != nil {
		return out, err
	}
	switch code {
	case http.StatusOK:
		if err := json.Unmarshal(body, &out); err != nil {
			return out, fmt.Errorf("control api: fire: decode answer: %w", err)
		}
		return out, nil
	case http.StatusConflict:
		var e apiError
		if json.Unmarshal(body, &e) == nil && e.Code == CodeAlreadyFired && e.Fire != nil {
			return FireOutcome{Campaign: id, Won: false, Fire: *e.Fire, Message: e.Error}, nil
		}
	}
	return out, apiErr("fire", code, body)
}

// Abort aborts campaign id through the API as the token's identity.
func (c *Client) Abort(ctx context.Context, id string) (AbortReply, error) {
	var out AbortReply
	code, body, err := c.post(ctx, id, "abort", request{})
	if err != nil {
		return out, err
	}
	if code != http.StatusOK {
		return out, apiErr("abort", code, body)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("control api: abort: decode answer: %w", err)
	}
	return out, nil
}

// Status fetches the campaign's status through the API.
func (c *Client) Status(ctx context.Context, id string) (*CampaignStatus, error) {
	var st CampaignStatus
	return &st, c.get(ctx, "status", "/v1/campaigns/"+url.PathEscape(id)+"/status", &st)
}

// Whoami returns the identity the API gives the client's token.
func (c *Client) Whoami(ctx context.Context) (identity.Identity, error) {
	var who identity.Identity
	return who, c.get(ctx, "whoami", "/v1/whoami", &who)
}

// get fetches path into out; op names the call in errors.
func (c *Client) get(ctx context.Context, op, path string, out any) error {
	code, body, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return apiErr(op, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("control api: %s: decode answer: %w", op, err)
	}
	return nil
}

func (c *Client) post(ctx context.Context, id, op string, req request) (int, []byte, error) {
	b, _ := json.Marshal(req)
	return c.do(ctx, http.MethodPost, "/v1/campaigns/"+url.PathEscape(id)+"/"+op, b)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("control api: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The error names the URL, never the token (it is only in a header).
		return 0, nil, fmt.Errorf("control api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("control api: %s %s: read answer: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// apiErr turns an error answer back into the sentinel it came from.
func apiErr(op string, code int, body []byte) error {
	var e apiError
	if json.Unmarshal(body, &e) != nil || e.Code == "" {
		return fmt.Errorf("control api: %s: HTTP %d: %s", op, code, strings.TrimSpace(string(body)))
	}
	var sentinel error
	switch e.Code {
	case CodeUnauthorized:
		sentinel = ErrUnauthorized
	case CodeForbidden:
		sentinel = ErrForbidden
	case CodeNotLauncher:
		sentinel = ErrNotLauncher
	case CodeRateLimited:
		sentinel = ErrRateLimited
	case CodeBadRequest:
		sentinel = ErrBadRequest
	case CodeUnknownCampaign:
		sentinel = ErrUnknownCampaign
	case CodeUnknownProof:
		sentinel = ErrUnknownProof
	case CodeNotPlanned:
		sentinel = ErrNotPlanned
	case CodeNotReady:
		return fmt.Errorf("control api: %s: %w", op, &NotReadyError{Reasons: e.Reasons})
	case CodeAborted:
		sentinel = ErrAborted
	case CodeAlreadyFired:
		sentinel = ErrAlreadyFired
	case CodeGuardUnavailable:
		sentinel = ErrGuardUnavailable
	default:
		sentinel = errors.New(e.Code)
	}
	return fmt.Errorf("control api: %s: HTTP %d: %w: %s", op, code, sentinel, e.Error)
}
