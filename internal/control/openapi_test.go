package control_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/control"
)

// TestOpenAPIRoles: the document names every route with the role the
// server checks (control.Needs), so the contract and the code cannot drift.
func TestOpenAPIRoles(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Role        string `json:"x-owlpost-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(control.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GET /v1/campaigns": control.ActionRead, "GET /v1/campaigns/{id}/status": control.ActionRead,
		"POST /v1/campaigns/{id}/prepare": control.ActionPrepare, "POST /v1/campaigns/{id}/proof": control.ActionProof,
		"GET /v1/campaigns/{id}/proofs/{proof}": control.ActionRead, "POST /v1/campaigns/{id}/fire": control.ActionFire,
		"POST /v1/campaigns/{id}/abort": control.ActionAbort, "GET /v1/whoami": control.ActionRead,
		"POST /v1/campaigns/{id}/rehearsals": control.ActionDefine,
	}
	seen := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			action, ok := want[key]
			if !ok {
				t.Errorf("%s is documented but not served", key)
				continue
			}
			seen++
			if op.Role != control.Needs[action].String() {
				t.Errorf("%s: documented role %q, the server checks %q", key, op.Role, control.Needs[action])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d routes documented, %d served", seen, len(want))
	}
}
