package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The load generator shares the machine with the server and PostgreSQL, so every CPU
// cycle it spends is taken from what it measures. vegeta (net/http's client, a result
// per request sent over a channel, its own histograms) took about a quarter of the
// machine on the read scenarios; this engine speaks HTTP/1.1 itself: one keep-alive
// connection per worker, the request written from a reused buffer in one write, the
// response parsed in place from a reused read buffer (only the status line and the
// framing headers), and the latency recorded in a fixed-bucket histogram of the worker's
// own. Nothing is allocated per request beyond what the targeter allocates.

const (
	// loadReadBuffer holds a whole response header (and most bodies).
	loadReadBuffer = 16 << 10
	// maxSampleBody bounds the body kept for an error sample.
	maxSampleBody = 512
	// requestTimeout bounds a request started before the end of the phase.
	requestTimeout = 60 * time.Second
)

// errMalformed is a response the engine cannot parse.
var errMalformed = errors.New("malformed HTTP response")

// loadWorker is one closed-loop client.
type loadWorker struct {
	targeter vegeta.Targeter
	fallback *http.Client // for targets other than plain http://
	deadline time.Time    // of the connection: end of the phase + requestTimeout
	stop     *atomic.Bool

	mu   sync.Mutex // guards conn against the cancellation
	conn net.Conn
	host string
	r    *bufio.Reader
	out  []byte // the request being written
	body []byte // the start of the current response's body, for an error sample

	target      vegeta.Target
	hist        latencyHist
	codes       [1000]uint64 // by status; 0: no response
	success     uint64
	errors      uint64
	samples     []string
	exhausted   bool
	first, last time.Time
}

// runLoad is the engine under attack: `concurrency` workers, each sending its next
// request when the previous one is answered, until d has passed.
func runLoad(ctx context.Context, tr *http.Transport, concurrency int, d time.Duration, name string, targeter vegeta.Targeter) httpPhase {
	var stop atomic.Bool
	end := time.Now().Add(d)
	fallback := &http.Client{
		Transport: tr, Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	workers := make([]*loadWorker, concurrency)
	for i := range workers {
		workers[i] = &loadWorker{
			targeter: targeter, fallback: fallback, deadline: end.Add(requestTimeout), stop: &stop,
			out: make([]byte, 0, 1024), body: make([]byte, 0, maxSampleBody),
		}
	}
	cancel := context.AfterFunc(ctx, func() {
		stop.Store(true)
		for _, w := range workers {
			w.mu.Lock()
			if w.conn != nil {
				_ = w.conn.SetDeadline(time.Now()) // unblocks a read or write in flight
			}
			w.mu.Unlock()
		}
	})
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("load", name), func(ctx context.Context) {
			defer wg.Done()
			defer w.closeConn()
			w.run(ctx, end)
		})
	}
	wg.Wait()

	var p httpPhase
	p.statusCodes = map[string]int{}
	var first, last time.Time
	seen := map[string]bool{}
	for _, w := range workers {
		p.latency.merge(&w.hist)
		p.success += w.success
		p.errors += w.errors
		p.exhausted = p.exhausted || w.exhausted
		for code, n := range w.codes {
			if n > 0 {
				p.statusCodes[strconv.Itoa(code)] += int(n)
			}
		}
		for _, s := range w.samples {
			if !seen[s] && len(p.samples) < maxErrorSamples {
				seen[s] = true
				p.samples = append(p.samples, s)
			}
		}
		if !w.first.IsZero() && (first.IsZero() || w.first.Before(first)) {
			first = w.first
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	if len(p.statusCodes) == 0 {
		p.statusCodes = nil
	}
	if !first.IsZero() {
		// From the first request sent to the last response received.
		p.seconds = last.Sub(first).Seconds()
	}
	return p
}

// run is the worker's closed loop.
func (w *loadWorker) run(ctx context.Context, end time.Time) {
	for !w.stop.Load() && ctx.Err() == nil {
		if !time.Now().Before(end) {
			return
		}
		w.target = vegeta.Target{}
		if err := w.targeter(&w.target); err != nil {
			// As vegeta did: a targeter that fails ends the whole attack.
			w.stop.Store(true)
			if errors.Is(err, errExhausted) {
				w.exhausted = true
				return
			}
			w.errors++
			w.codes[0]++
			w.sample(err.Error())
			return
		}
		t0 := time.Now()
		code, err := w.do(ctx)
		t1 := time.Now()
		if err != nil && ctx.Err() != nil {
			return // cancelled: not a result
		}
		if w.first.IsZero() {
			w.first = t0
		}
		w.last = t1
		w.hist.record(t1.Sub(t0))
		w.codes[code]++
		switch {
		case err != nil:
			w.errors++
			w.sample(err.Error())
		case code >= 200 && code < 300:
			w.success++
		default:
			w.errors++
			w.sample(strconv.Itoa(code) + ": " + string(bytes.TrimSpace(w.body)))
		}
	}
}

// sample keeps a few distinct error messages.
func (w *loadWorker) sample(msg string) {
	if len(w.samples) >= maxErrorSamples {
		return
	}
	s := fmt.Sprintf("%s %s → %s", w.target.Method, w.target.URL, msg)
	for _, old := range w.samples {
		if old == s {
			return
		}
	}
	w.samples = append(w.samples, s)
}

// do sends w.target and reads the response: its status code, and in w.body the start of
// its body when the status is not 2xx. On any error the connection is dropped and the
// next request dials a new one.
func (w *loadWorker) do(ctx context.Context) (int, error) {
	t := &w.target
	host, path, ok := splitHTTPURL(t.URL)
	if !ok {
		return w.doFallback(ctx)
	}
	if w.conn == nil || host != w.host {
		if err := w.dial(ctx, host); err != nil {
			return 0, err
		}
	}
	w.out = appendRequest(w.out[:0], t, host, path)
	if _, err := w.conn.Write(w.out); err != nil {
		w.closeConn()
		return 0, err
	}
	code, keep, err := w.readResponse(t.Method == http.MethodHead)
	if err != nil || !keep {
		w.closeConn()
	}
	if err != nil {
		return 0, err
	}
	return code, nil
}

func (w *loadWorker) dial(ctx context.Context, host string) error {
	w.closeConn()
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	if err := c.SetDeadline(w.deadline); err != nil {
		c.Close()
		return err
	}
	w.mu.Lock()
	w.conn, w.host = c, host
	w.mu.Unlock()
	if w.r == nil {
		w.r = bufio.NewReaderSize(c, loadReadBuffer)
	} else {
		w.r.Reset(c)
	}
	return nil
}

func (w *loadWorker) closeConn() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// splitHTTPURL splits a plain http:// URL into its host and its path with the query.
func splitHTTPURL(u string) (host, path string, ok bool) {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return "", "", false
	}
	i := strings.IndexAny(rest, "/?#")
	if i < 0 {
		return rest, "/", rest != ""
	}
	host, path = rest[:i], rest[i:]
	if path[0] != '/' {
		return "", "", false // "http://host?x": let net/http handle the odd form
	}
	if j := strings.IndexByte(path, '#'); j >= 0 {
		path = path[:j]
	}
	return host, path, host != ""
}

// appendRequest writes t as an HTTP/1.1 request.
func appendRequest(b []byte, t *vegeta.Target, host, path string) []byte {
	b = append(b, t.Method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range t.Header {
		if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if len(t.Body) > 0 || t.Method == http.MethodPost || t.Method == http.MethodPut || t.Method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(t.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, t.Body...)
}

// readResponse reads one response: its status, whether the connection stays open, and
// its body, discarded except for the start of a non-2xx one (in w.body).
func (w *loadWorker) readResponse(head bool) (code int, keep bool, err error) {
	line, err := w.readLine()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		code = code*10 + int(c-'0')
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := w.readLine()
		if err != nil {
			return 0, false, err
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "content-length"):
			n, ok := parseLength(v)
			if !ok {
				return 0, false, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
			length = n
		case asciiEqualFold(k, "transfer-encoding"):
			chunked = asciiEqualFold(v, "chunked")
		case asciiEqualFold(k, "connection"):
			if asciiEqualFold(v, "close") {
				keep = false
			} else if asciiEqualFold(v, "keep-alive") {
				keep = true
			}
		}
	}
	if code >= 100 && code < 200 {
		return w.readResponse(head) // an interim response: the final one follows
	}
	w.body = w.body[:0]
	sample := code < 200 || code >= 300
	switch {
	case head || code == http.StatusNoContent || code == http.StatusNotModified:
	case chunked:
		err = w.readChunked(sample)
	case length >= 0:
		err = w.readBody(length, sample)
	default: // delimited by the end of the connection
		keep = false
		err = w.readBody(-1, sample)
	}
	return code, keep, err
}

// readLine reads a line without its CRLF, valid until the next read. A line longer than
// the buffer is skipped whole and returned cut.
func (w *loadWorker) readLine() ([]byte, error) {
	line, err := w.r.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = w.r.ReadSlice('\n')
		line = []byte("x-long: ") // no framing header is that long
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// readBody reads n bytes of body (n < 0: up to the end of the connection), keeping the
// first maxSampleBody in w.body when sample is set.
func (w *loadWorker) readBody(n int, sample bool) error {
	if sample && len(w.body) < maxSampleBody {
		k := maxSampleBody - len(w.body)
		if n >= 0 {
			k = min(k, n)
		}
		start := len(w.body)
		got, err := io.ReadFull(w.r, w.body[start:start+k])
		w.body = w.body[:start+got]
		if n < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil
		}
		if err != nil {
			return err
		}
		if n >= 0 {
			n -= got
		}
	}
	if n < 0 {
		_, err := io.Copy(io.Discard, w.r)
		return err
	}
	_, err := w.r.Discard(n)
	return err
}

// readChunked reads a chunked body and its trailers.
func (w *loadWorker) readChunked(sample bool) error {
	for {
		line, err := w.readLine()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			for { // trailers, up to the empty line
				line, err := w.readLine()
				if err != nil || len(line) == 0 {
					return err
				}
			}
		}
		if err := w.readBody(int(size), sample); err != nil {
			return err
		}
		if line, err := w.readLine(); err != nil || len(line) != 0 {
			return errors.Join(err, fmt.Errorf("%w: no CRLF after a chunk", errMalformed))
		}
	}
}

// parseLength parses a Content-Length value.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// asciiEqualFold compares a header name or token to a lower-case ASCII word.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// doFallback sends a target the engine does not speak through net/http.
func (w *loadWorker) doFallback(ctx context.Context) (int, error) {
	t := &w.target
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return 0, err
	}
	if t.Header != nil {
		req.Header = t.Header
	}
	res, err := w.fallback.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	w.body = w.body[:0]
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		n, _ := io.ReadFull(res.Body, w.body[:maxSampleBody])
		w.body = w.body[:n]
	}
	_, err = io.Copy(io.Discard, res.Body)
	if res.StatusCode < 0 || res.StatusCode >= len(w.codes) {
		return 0, fmt.Errorf("status %d", res.StatusCode)
	}
	return res.StatusCode, err
}
