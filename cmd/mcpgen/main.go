// Command mcpgen writes gen/mcp from openapi.yaml: tools.json (the MCP tools of the
// operations marked x-mcp) and mcp.gen.go (the glue that serves them). `make generate`
// runs it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"enterprise-automation/internal/mcpgen"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcpgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	spec := fs.String("spec", "openapi.yaml", "the OpenAPI contract to read")
	out := fs.String("out", "gen/mcp", "the directory to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return mcpgen.WriteDir(*spec, *out)
}
