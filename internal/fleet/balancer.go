package fleet

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HAProxyConfig is the balancer configuration the tests and the bench use, and the one
// the README recommends in front of several API instances: round robin; a server leaves
// the rotation when /api/health/ready fails or its port refuses connections, and a
// request that could not be delivered (connection refused or closed before any answer,
// as while an instance shuts down) is sent again to another instance; SSE streams are
// tunnels that may stay open for an hour.
func HAProxyConfig(listen string, backends []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-keep-alive 10s
    option redispatch
    retries 3
    retry-on conn-failure empty-response

frontend api
    bind %s
    default_backend apis

backend apis
    balance roundrobin
    option httpchk GET /api/health/ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
`, listen)
	for i, addr := range backends {
		fmt.Fprintf(&b, "    server api%d %s check\n", i+1, addr)
	}
	return b.String()
}

// Balancer is a haproxy process in front of API instances.
type Balancer struct {
	Addr string
	proc *Proc
}

// URL is the balancer's base URL.
func (b *Balancer) URL() string { return "http://" + b.Addr }

// Pid is haproxy's master process (its worker is a child: count the tree's CPU).
func (b *Balancer) Pid() int { return b.proc.Pid() }

// Log returns haproxy's output.
func (b *Balancer) Log() string { return b.proc.Log() }

// Stop ends haproxy.
func (b *Balancer) Stop() { b.proc.Stop(5 * time.Second) }

// HAProxyPath finds haproxy (Debian puts it in /usr/sbin, often not on PATH).
func HAProxyPath() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("fleet: haproxy is not installed (make deps installs it)")
}

// StartBalancer runs haproxy on a free loopback port in front of backends (host:port
// each), writing its configuration into dir, and waits until it forwards a readiness
// check.
func StartBalancer(dir string, backends []string) (*Balancer, error) {
	bin, err := HAProxyPath()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(HAProxyConfig(addr, backends)), 0o600); err != nil {
			return nil, err
		}
		p, err := StartProc(bin, dir, "haproxy", map[string]string{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, "-W", "-db", "-f", cfg)
		if err != nil {
			return nil, err
		}
		b := &Balancer{Addr: addr, proc: p}
		if lastErr = b.waitUp(15 * time.Second); lastErr == nil {
			return b, nil
		}
		p.Stop(2 * time.Second)
	}
	return nil, lastErr
}

func (b *Balancer) waitUp(within time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for {
		res, err := hc.Get(b.URL() + "/api/health/ready")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		if ok, werr := b.proc.Exited(); ok {
			return fmt.Errorf("fleet: haproxy exited (%s)\n%s", describe(werr), b.proc.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet: haproxy not forwarding within %v: %w\n%s", within, err, b.proc.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("fleet: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
