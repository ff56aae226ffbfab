// Package deploy checks the deployment artefacts without a container engine: the
// Dockerfile builds the binary the way the tests build it, that binary runs from an
// empty root as the image's non-root user, and compose.yaml is valid against the
// compose specification's JSON schema.
package deploy
