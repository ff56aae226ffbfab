package httpapi_test

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/httpapi"
)

var updateRoutes = flag.Bool("update-routes", false, "rewrite testdata/routes.txt from the contract")

// TestRoutesTableIsCommitted keeps testdata/routes.txt (what `automation routes` prints)
// equal to the contract, so that a change of request policy shows in review as a change
// of that table. Rewrite it with `go test ./internal/httpapi -run TestRoutesTable -update-routes`.
func TestRoutesTableIsCommitted(t *testing.T) {
	t.Parallel()
	policies, err := httpapi.ContractPolicies()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, httpapi.WritePolicies(&buf, policies))
	const golden = "testdata/routes.txt"
	if *updateRoutes {
		require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), buf.String(), "the request policies changed: rerun with -update-routes and commit %s", golden)
}

// TestPoliciesFollowTheContract reads openapi.yaml itself and checks each operation's
// policy against what it declares.
func TestPoliciesFollowTheContract(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromFile("../../openapi.yaml")
	require.NoError(t, err)
	policies, err := httpapi.ContractPolicies()
	require.NoError(t, err)
	byID := map[string]httpapi.Policy{}
	for _, p := range policies {
		byID[p.OperationID] = p
	}

	var passwordChecking []string
	count := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			count++
			p, ok := byID[op.OperationID]
			require.True(t, ok, "%s has a policy", op.OperationID)
			require.Equal(t, method, p.Method, op.OperationID)
			require.Equal(t, path, p.Path, op.OperationID)

			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			wantAuth := "public"
			if len(security) > 0 {
				wantAuth = "bearer"
				for _, req := range security {
					if _, ok := req["ApiKeyAuth"]; ok {
						wantAuth = "bearer,api-key"
					}
				}
			}
			require.Equal(t, wantAuth, p.Auth, op.OperationID)
			require.Equal(t, op.Extensions["x-required-role"], p.Role, op.OperationID)
			scope, _ := op.Extensions["x-required-scope"].(string)
			require.Equal(t, scope, p.Scope, op.OperationID)
			if strings.HasPrefix(path, "/api/v1/") && len(security) > 0 {
				require.Contains(t, apikey.Scopes, scope, "%s: a secured /api/v1 operation declares one known x-required-scope", op.OperationID)
			} else {
				require.Empty(t, scope, "%s: an operation open to anonymous callers declares no scope", op.OperationID)
			}

			declares429 := op.Responses.Value("429") != nil
			require.Equal(t, declares429, slices.Contains(p.RateLimits, "user/ip"), "%s: general limit iff it declares 429", op.OperationID)

			takesKey := false
			for _, param := range op.Parameters {
				if param.Value.In == "header" && param.Value.Name == "Idempotency-Key" {
					takesKey = true
				}
			}
			require.Equal(t, takesKey, p.Idempotent, "%s: Idempotency-Key iff it declares the header", op.OperationID)

			var body []string
			if op.RequestBody != nil {
				for ct := range op.RequestBody.Value.Content {
					body = append(body, ct)
				}
			}
			sort.Strings(body)
			require.Equal(t, body, p.Body, op.OperationID)
			if slices.Contains(p.RateLimits, "login-account") {
				passwordChecking = append(passwordChecking, op.OperationID)
			}
		}
	}
	require.Len(t, policies, count, "one policy per operation")
	require.Contains(t, byID["createToken"].RateLimits, "login-ip")
	sort.Strings(passwordChecking)
	require.Equal(t, []string{"createToken", "replaceUser", "updateCurrentUser", "updateUser"}, passwordChecking,
		"every operation that checks a password spends the account's login budget")
}
