package httpapi

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Policy is the request policy the contract sets for one operation, as the middleware
// applies it. Every field is read from openapi.yaml (see operations): the handler code
// does not show it, so `automation routes` prints this table and a test keeps it equal
// to the spec.
type Policy struct {
	Method      string
	Path        string // OpenAPI path template
	OperationID string
	// Auth is "bearer" when the operation declares a security requirement (401 without a
	// valid token), "bearer,api-key" when an API key is accepted too, else "public".
	Auth string
	// Role is x-required-role: public, user (any signed-in user) or admin (403 otherwise).
	Role string
	// Scope is x-required-scope: the scope an API key needs (403 insufficient-scope
	// without it); "" on operations open to anonymous callers.
	Scope string
	// RateLimits names the rate-limit policies applied: "user/ip" (the general policy,
	// when the operation declares a 429), "login-ip" (logins), "login-account" (failed
	// password checks of an account).
	RateLimits []string
	// Idempotent says that the operation honours Idempotency-Key (it declares the header).
	Idempotent bool
	// Body lists the accepted request content types (none: the body is not read).
	Body []string
}

// Policies returns the policy of every operation the server serves, sorted by path and
// method.
func (s *Server) Policies() []Policy { return policies(s.ops) }

// ContractPolicies returns the policies of the embedded contract's operations, as
// Policies does, without a server. It fails only if the embedded contract cannot be
// loaded, which would be a build defect.
func ContractPolicies() ([]Policy, error) {
	doc, err := LoadContract()
	if err != nil {
		return nil, err
	}
	return policies(operations(doc)), nil
}

func policies(ops map[string]*operation) []Policy {
	out := make([]Policy, 0, len(ops))
	for key, op := range ops {
		r := op.route
		p := Policy{
			Method: r.Method, Path: r.Path, OperationID: r.Operation.OperationID,
			Auth: "public", Role: op.requiredRole, Scope: op.requiredScope, Idempotent: op.idempotent,
		}
		if op.secured {
			p.Auth = "bearer"
			if op.acceptsKey {
				p.Auth = "bearer,api-key"
			}
		}
		if op.rateLimited {
			p.RateLimits = append(p.RateLimits, "user/ip")
		}
		if key == loginOperation {
			p.RateLimits = append(p.RateLimits, "login-ip")
		}
		if passwordCheckingOps[key] {
			p.RateLimits = append(p.RateLimits, "login-account")
		}
		for ct := range op.bodyTypes {
			p.Body = append(p.Body, ct)
		}
		slices.Sort(p.Body)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Policy) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(methodOrder(a.Method), methodOrder(b.Method)))
	})
	return out
}

// methodOrder sorts GET before POST, PUT, PATCH and DELETE.
func methodOrder(m string) string {
	return fmt.Sprint(slices.Index([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, m)+1, m)
}

// WritePolicies prints policies as an aligned text table, one operation per line.
func WritePolicies(w io.Writer, policies []Policy) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tPATH\tOPERATION\tAUTH\tROLE\tSCOPE\tRATE LIMITS\tIDEMPOTENCY-KEY\tBODY")
	for _, p := range policies {
		idem := "-"
		if p.Idempotent {
			idem = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Method, p.Path, p.OperationID, p.Auth, p.Role, orDash(p.Scope),
			orDash(strings.Join(p.RateLimits, ",")), idem, orDash(strings.Join(p.Body, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string { return cmp.Or(s, "-") }
