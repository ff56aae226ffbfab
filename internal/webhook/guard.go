package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"enterprise-automation/internal/apperr"
)

// ResolveFunc resolves a host name to its addresses (net.DefaultResolver.LookupNetIP by
// default; tests answer for names of their own).
type ResolveFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// Guard decides which addresses deliveries may reach and dials them. It refuses
// loopback, private, link-local, CGNAT, multicast and unspecified addresses unless
// AllowPrivate, and checks the address actually being connected (the dialer's Control
// hook, after name resolution), on every attempt: a name that resolved to a public
// address when the endpoint was created and to 127.0.0.1 now (DNS rebinding) fails.
type Guard struct {
	AllowPrivate bool
	Resolve      ResolveFunc
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
}

// ErrRefusedAddress is the error of a dial to an address the guard refuses.
var ErrRefusedAddress = errors.New("address refused: private, loopback, link-local or otherwise non-public network")

// cgnat is RFC 6598's shared address space (carrier-grade NAT).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Allowed reports whether a delivery may connect to a.
func (g *Guard) Allowed(a netip.Addr) bool {
	if g.AllowPrivate {
		return true
	}
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(),
		a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsMulticast(), cgnat.Contains(a):
		return false
	}
	// 0.0.0.0/8 ("this network") and the IPv4 broadcast address.
	if a.Is4() && (a.As4()[0] == 0 || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return false
	}
	return true
}

func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	if g.Resolve != nil {
		return g.Resolve(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// DialContext connects to addr ("host:port") through the guard: each resolved address
// is tried in turn, and refused at connect time unless Allowed.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	d := net.Dialer{Timeout: g.DialTimeout, Control: g.control}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// control runs just before the socket connects, with the address it connects to.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, ap.Addr())
	}
	return nil
}

// CheckURL validates an endpoint URL: absolute http or https, a host, no credentials,
// no fragment; and, unless private networks are allowed, a host that does not resolve
// to a refused address (a name that does not resolve now is accepted: the connect-time
// check still applies). Invalid, naming the field, otherwise.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	bad := func(msg string) error {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "url", Message: msg})
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("must be an absolute http or https URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return bad("must name a host")
	case u.User != nil:
		return bad("must not carry credentials; authenticate receivers by the signature")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment")
	}
	if g.AllowPrivate {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := g.resolve(rctx, u.Hostname())
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if !g.Allowed(a) {
			return bad(fmt.Sprintf("resolves to %s, a private or otherwise non-public address", a))
		}
	}
	return nil
}
