package config

import (
	_ "embed"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
)

// source is this package's Config definition, from which Example writes .env.example,
// so that the example cannot drift from what the server reads.
//
//go:embed config.go
var source []byte

// Example returns the text of .env.example: every variable Config reads, in order, with
// the field's doc comment and its default (variables without a default are left
// commented out). It fails only if config.go cannot be parsed, a build defect.
func Example() ([]byte, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", source, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var fields *ast.FieldList
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok && ts.Name.Name == "Config" {
			if st, ok := ts.Type.(*ast.StructType); ok {
				fields = st.Fields
			}
			return false
		}
		return fields == nil
	})
	if fields == nil {
		return nil, errors.New("config: no Config struct in config.go")
	}
	var b strings.Builder
	b.WriteString("# Settings of the Enterprise Automation API, read from the environment or from a .env\n")
	b.WriteString("# file in the working directory (the environment wins). Copy this file to .env and set\n")
	b.WriteString("# what you need; a commented-out variable has no default.\n")
	b.WriteString("# Generated from internal/config/config.go by `make generate`: do not edit by hand.\n")
	for _, field := range fields.List {
		if field.Tag == nil {
			continue
		}
		tag, err := strconv.Unquote(field.Tag.Value)
		if err != nil {
			return nil, err
		}
		name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ",")
		if name == "" {
			continue
		}
		b.WriteString("\n")
		if doc := strings.TrimSpace(field.Doc.Text()); doc != "" {
			for _, line := range strings.Split(doc, "\n") {
				b.WriteString("# " + line + "\n")
			}
		}
		if def, ok := reflect.StructTag(tag).Lookup("envDefault"); ok {
			b.WriteString(name + "=" + def + "\n")
		} else {
			b.WriteString("# " + name + "=\n")
		}
	}
	return []byte(b.String()), nil
}
