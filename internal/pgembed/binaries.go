package pgembed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

var serverTools = []string{"initdb", "pg_ctl", "postgres"}

// findBinDir returns the folder holding all server tools: explicit if given,
// otherwise the first match among the Debian layout, pg_config and PATH.
func findBinDir(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err != nil {
			abs = explicit
		}
		if hasServerTools(abs) {
			return abs, nil
		}
		return "", binariesNotFound([]string{abs})
	}

	var searched []string
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versioned, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	if len(versioned) == 0 {
		searched = append(searched, "/usr/lib/postgresql/*/bin (no such folder)")
	}
	for _, d := range versioned {
		searched = append(searched, d)
		if hasServerTools(d) {
			return d, nil
		}
	}

	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		searched = append(searched, d+" (pg_config --bindir)")
		if hasServerTools(d) {
			return d, nil
		}
	} else {
		searched = append(searched, "pg_config --bindir (pg_config not found)")
	}

	if p, err := exec.LookPath("initdb"); err == nil {
		// Distributions often put symlinks on PATH; the real folder is the
		// one that also holds pg_ctl and postgres.
		dirs := []string{filepath.Dir(p)}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			searched = append(searched, d+" (initdb on PATH)")
			if hasServerTools(d) {
				return d, nil
			}
		}
	} else {
		searched = append(searched, "PATH (no initdb)")
	}
	return "", binariesNotFound(searched)
}

func binariesNotFound(searched []string) error {
	return fmt.Errorf("%w; searched: %s; install them with \"apt-get install postgresql\" (Debian/Ubuntu) or point Options.BinDir at the folder holding them",
		ErrBinariesNotFound, strings.Join(searched, ", "))
}

func hasServerTools(dir string) bool {
	for _, tool := range serverTools {
		fi, err := os.Stat(filepath.Join(dir, tool))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// compareVersions orders dotted version strings such as "9.6" and "15"
// numerically; non-numeric parts compare as 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
