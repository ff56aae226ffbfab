// Command vulncheck runs govulncheck over the project against a local copy of the Go
// vulnerability database and fails when the code calls a known-vulnerable symbol, except
// for the entries of an exceptions file, each with the reason it does not apply here.
//
// The database is built from the OSV records of the golang.org/x/vulndb module pinned in
// this directory's go.mod (see `make vulncheck`): scanning needs no network but the module
// proxy, and moving to newer records is a version bump of that module.
//
//	go run . -db DIR -exceptions FILE MODULE_DIR
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/vuln/scan"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vulncheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("vulncheck", flag.ContinueOnError)
	db := fs.String("db", "", "directory of the vulnerability database (index/ and ID/)")
	exceptionsFile := fs.String("exceptions", "", "file of accepted vulnerabilities: an ID, then the reason, a line each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" || fs.NArg() != 1 {
		return errors.New("usage: vulncheck -db DIR [-exceptions FILE] MODULE_DIR")
	}
	dbDir, err := filepath.Abs(*db)
	if err != nil {
		return err
	}
	exceptions := map[string]string{}
	if *exceptionsFile != "" {
		if exceptions, err = readExceptions(*exceptionsFile); err != nil {
			return err
		}
	}

	var stdout, stderr bytes.Buffer
	cmd := scan.Command(ctx, "-C", fs.Arg(0), "-db", "file://"+dbDir, "-format", "json", "./...")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("govulncheck: %w\n%s", err, stderr.String())
	}

	called, err := calledVulnerabilities(&stdout)
	if err != nil {
		return err
	}
	var failing []string
	for _, id := range slices.Sorted(maps.Keys(called)) {
		if reason, ok := exceptions[id]; ok {
			fmt.Fprintf(out, "accepted %s (%s): %s\n", id, called[id], reason)
			continue
		}
		failing = append(failing, fmt.Sprintf("%s (%s)", id, called[id]))
	}
	for id := range exceptions {
		if _, ok := called[id]; !ok {
			fmt.Fprintf(out, "note: exception %s no longer applies: remove it from %s\n", id, *exceptionsFile)
		}
	}
	if len(failing) > 0 {
		return fmt.Errorf("the code calls vulnerable symbols: %s (see https://pkg.go.dev/vuln/<ID>; upgrade, or add an exception with its reason)",
			strings.Join(failing, ", "))
	}
	fmt.Fprintf(out, "no called vulnerabilities (%d accepted)\n", len(called))
	return nil
}

// calledVulnerabilities reads govulncheck's JSON stream and returns the vulnerabilities
// whose symbols the code reaches, each with the module and version it was found in.
func calledVulnerabilities(r io.Reader) (map[string]string, error) {
	type frame struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Function string `json:"function"`
	}
	type message struct {
		Finding *struct {
			OSV          string  `json:"osv"`
			FixedVersion string  `json:"fixed_version"`
			Trace        []frame `json:"trace"`
		} `json:"finding"`
	}
	called := map[string]string{}
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return called, nil
		} else if err != nil {
			return nil, fmt.Errorf("reading govulncheck's output: %w", err)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // the module or package is used, but no vulnerable symbol is called
		}
		fixed := "no fix"
		if f.FixedVersion != "" {
			fixed = "fixed in " + f.FixedVersion
		}
		called[f.OSV] = fmt.Sprintf("%s@%s, %s", f.Trace[0].Module, f.Trace[0].Version, fixed)
	}
}

func readExceptions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: %s needs a reason", path, i+1, id)
		}
		out[id] = strings.TrimSpace(reason)
	}
	return out, nil
}
