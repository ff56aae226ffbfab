// Package fleet runs the product as an operator deploys it, for tests and the bench:
// the binary built as the Dockerfile builds it, one PostgreSQL, optionally redis-server,
// several `serve` and `worker` processes started with nothing but their settings in the
// environment, and haproxy in front of the API instances, all on loopback.
//
// It is a test harness: imported by tests and by the bench, never by the binary.
package fleet

import (
	"maps"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"enterprise-automation/internal/pgembed"
	"enterprise-automation/internal/redistest"
)

// Options says what to run.
type Options struct {
	APIs    int  // serve processes, WORKER_CONCURRENCY=0
	Workers int  // worker processes
	Redis   bool // REDIS_URL set for every process
	// Balancer puts haproxy in front of the API instances.
	Balancer bool
	// Env is added to every process's environment.
	Env map[string]string
}

// Fleet is a running deployment.
type Fleet struct {
	Bin   string
	Dir   string
	DBURL string
	Redis *redistest.Server
	// Env is the environment every process of the fleet gets.
	Env map[string]string

	APIs    []*Proc
	Workers []*Proc
	LB      *Balancer

	AdminEmail, AdminPassword string

	t     testing.TB
	mu    sync.Mutex
	n     int
	procs []*Proc
}

// SecretKey is the JWT signing key every instance of a test fleet shares.
const SecretKey = "fleet-test-secret-key-0123456789abcdef0123456789"

// Start runs a fleet for the test and stops it when the test ends; on failure the
// test's output gets the tail of every process's log.
func Start(t testing.TB, opts Options) *Fleet {
	t.Helper()
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cluster, err := pgembed.Start(t.Context(), pgembed.Options{Dir: dir + "/pg", TCP: true, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	f := &Fleet{
		Bin: bin, Dir: dir, DBURL: cluster.TCPURL("postgres"), t: t,
		AdminEmail: "admin@example.com", AdminPassword: "fleet-admin-password",
	}
	f.Env = map[string]string{
		"DATABASE_URL": f.DBURL,
		"SECRET_KEY":   SecretKey,
		"API_HOST":     "127.0.0.1",
		"API_PORT":     "0",
	}
	if opts.Redis {
		f.Redis = redistest.Start(t)
		f.Env["REDIS_URL"] = f.Redis.URL()
	}
	maps.Copy(f.Env, opts.Env)
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
	})
	seedEnv := maps.Clone(f.Env)
	seedEnv["FIRST_ADMIN_EMAIL"], seedEnv["FIRST_ADMIN_PASSWORD"] = f.AdminEmail, f.AdminPassword
	if err := RunOnce(bin, dir, "migrate", f.Env, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	if err := RunOnce(bin, dir, "seed", seedEnv, "seed"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	f.APIs = make([]*Proc, opts.APIs)
	f.Workers = make([]*Proc, opts.Workers)
	for i := range opts.APIs {
		wg.Go(func() { f.APIs[i] = f.Serve(t, nil) })
	}
	for i := range opts.Workers {
		wg.Go(func() { f.Workers[i] = f.Worker(t, nil) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if opts.Balancer {
		addrs := make([]string, len(f.APIs))
		for i, p := range f.APIs {
			addrs[i] = p.Addr
		}
		if f.LB, err = StartBalancer(dir, addrs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.LB.Stop)
	}
	return f
}

// Serve starts one more `serve` process (WORKER_CONCURRENCY=0 unless extra says
// otherwise) and waits until it is ready. Safe to call from several goroutines.
func (f *Fleet) Serve(t testing.TB, extra map[string]string) *Proc {
	env := maps.Clone(f.Env)
	env["WORKER_CONCURRENCY"] = "0"
	maps.Copy(env, extra)
	return f.start(t, "api", env, "serve")
}

// Worker starts one more `worker` process and waits until it works.
func (f *Fleet) Worker(t testing.TB, extra map[string]string) *Proc {
	env := maps.Clone(f.Env)
	maps.Copy(env, extra)
	return f.start(t, "worker", env, "worker")
}

func (f *Fleet) start(t testing.TB, kind string, env map[string]string, args ...string) *Proc {
	f.mu.Lock()
	f.n++
	name := kind + "-" + strconv.Itoa(f.n)
	f.mu.Unlock()
	p, err := StartProc(f.Bin, f.Dir, name, env, args...)
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { p.Stop(30 * time.Second) })
	if err := p.WaitReady(60 * time.Second); err != nil {
		t.Error(err)
		return nil
	}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p
}

func (f *Fleet) dumpLogs() {
	f.mu.Lock()
	procs := append([]*Proc(nil), f.procs...)
	f.mu.Unlock()
	for _, p := range procs {
		f.t.Logf("--- last lines of %s:\n%s", p.Name, tail(p.Log(), 40))
	}
	if f.LB != nil {
		f.t.Logf("--- haproxy:\n%s", tail(f.LB.Log(), 40))
	}
}
