package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/owlpost/owlpost/internal/pushsim"
)

// SimCheck compares the report with the push simulator's own delivery record
// of the campaign (its collapse id), the independent witness of "each token
// exactly once".
type SimCheck struct {
	Sim pushsim.Stats `json:"simulator"`
	// Expected is what the simulator should have accepted: the report's
	// accepted notifications plus the proof sends.
	Expected uint64   `json:"expected_accepted"`
	OK       bool     `json:"exactly_once"`
	Problems []string `json:"problems,omitempty"`
}

// CheckSimulator fetches the simulator's stats for the campaign from its admin
// API and compares.
func (r *Report) CheckSimulator(ctx context.Context, adminURL string) (*SimCheck, error) {
	u := adminURL + "/stats?campaign=" + url.QueryEscape(r.Campaign)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("report: simulator stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("report: simulator stats: %s: %s", resp.Status, b)
	}
	c := &SimCheck{Expected: r.Total.Accepted + r.ProofAccepted}
	if err := json.NewDecoder(resp.Body).Decode(&c.Sim); err != nil {
		return nil, fmt.Errorf("report: simulator stats: %w", err)
	}
	if uint64(c.Sim.Accepted) != c.Expected {
		c.Problems = append(c.Problems, fmt.Sprintf("simulator accepted %d, report says %d (+%d proof)", c.Sim.Accepted, r.Total.Accepted, r.ProofAccepted))
	}
	if c.Sim.DuplicateDeliveries != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("simulator saw %d duplicate deliveries over %d tokens", c.Sim.DuplicateDeliveries, c.Sim.DuplicateTokens))
	}
	if r.Total.Failed+r.Total.Expired+r.Total.Aborted > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("not every valid token was accepted: failed %d, expired %d, aborted %d", r.Total.Failed, r.Total.Expired, r.Total.Aborted))
	}
	c.OK = len(c.Problems) == 0
	return c, nil
}

// WriteText prints the check.
func (c *SimCheck) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nsimulator's record: accepted %d (distinct tokens %d, duplicate deliveries %d), expected %d\n",
		c.Sim.Accepted, c.Sim.DistinctTokens, c.Sim.DuplicateDeliveries, c.Expected)
	if c.OK {
		fmt.Fprintln(w, "exactly once: every valid token accepted once, none twice")
		return
	}
	for _, p := range c.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
}
