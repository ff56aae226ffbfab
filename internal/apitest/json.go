package apitest

import (
	"bytes"
	"encoding/json"
)

// jsonUnmarshal decodes with numbers as float64, as kin-openapi expects.
func jsonUnmarshal(b []byte, v any) error {
	return json.NewDecoder(bytes.NewReader(b)).Decode(v)
}
