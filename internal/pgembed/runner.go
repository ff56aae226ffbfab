package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// basePath is the whole PATH the server tools get; the environment is kept
// minimal so no secrets or PG* variables of the caller leak into them.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runner runs the server tools, as the "postgres" system user when we are
// root (runuser != "") and as ourselves otherwise.
type runner struct {
	binDir   string
	runuser  string
	userName string
	uid, gid int
}

func newRunner(ctx context.Context, binDir string, logger *slog.Logger) (runner, error) {
	r := runner{binDir: binDir, uid: os.Geteuid(), gid: os.Getegid()}
	if r.uid != 0 {
		return r, nil
	}
	runuser, err := findSystemTool("runuser")
	if err != nil {
		return r, fmt.Errorf("pgembed: running as root, where PostgreSQL refuses to run, and runuser (util-linux) to switch to the postgres user is missing: %w", err)
	}
	u, err := user.Lookup(superuser)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		u, err = createSystemUser(ctx, logger)
	}
	if err != nil {
		return r, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return r, fmt.Errorf("pgembed: user %s has non-numeric uid %q", superuser, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return r, fmt.Errorf("pgembed: user %s has non-numeric gid %q", superuser, u.Gid)
	}
	if uid == 0 {
		return r, fmt.Errorf("pgembed: user %s has uid 0; PostgreSQL refuses to run as root", superuser)
	}
	return runner{binDir: binDir, runuser: runuser, userName: superuser, uid: uid, gid: gid}, nil
}

func createSystemUser(ctx context.Context, logger *slog.Logger) (*user.User, error) {
	const hint = "useradd --system --no-create-home --shell /usr/sbin/nologin " + superuser
	logger.Info("pgembed: creating system user to run PostgreSQL, which refuses to run as root", "user", superuser)
	useradd, err := findSystemTool("useradd")
	if err != nil {
		return nil, fmt.Errorf("pgembed: running as root and system user %q does not exist; could not create it (%s): %w", superuser, hint, err)
	}
	out, err := exec.CommandContext(ctx, useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", superuser).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgembed: running as root and system user %q does not exist; creating it with %q failed: %w: %s",
			superuser, hint, err, strings.TrimSpace(string(out)))
	}
	u, err := user.Lookup(superuser)
	if err != nil {
		return nil, fmt.Errorf("pgembed: created system user %q but cannot look it up: %w", superuser, err)
	}
	return u, nil
}

// findSystemTool looks beyond PATH because root shells in containers often
// lack the sbin folders.
func findSystemTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range filepath.SplitList(basePath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, basePath)
}

func (r runner) asOther() bool { return r.runuser != "" }

func (r runner) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	path := filepath.Join(r.binDir, tool)
	var cmd *exec.Cmd
	if r.asOther() {
		cmd = exec.CommandContext(ctx, r.runuser, append([]string{"-u", r.userName, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Env = []string{"PATH=" + r.binDir + ":" + basePath, "LANG=C.UTF-8"}
	// The server user may not be allowed into our working directory.
	cmd.Dir = "/"
	// The postmaster is detached by pg_ctl; this only guards against a tool
	// that unexpectedly keeps our output pipe open.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (r runner) chown(path string) error {
	if !r.asOther() {
		return nil
	}
	if err := os.Lchown(path, r.uid, r.gid); err != nil {
		return fmt.Errorf("pgembed: giving %s to user %s: %w", path, r.userName, err)
	}
	return nil
}

// ensureTraversable lets the server user reach dir by adding o+x to dir and
// every ancestor it could not otherwise search. Folders from dir up to base
// (the caller's own folder, e.g. dev's .data) are the cluster's and change
// quietly; a folder above base belongs to the user (a home folder, a project),
// so before it is widened a warning names it and the mode change, and says how
// to avoid it. The change is only o+x (search, not listing or reading).
func (r runner) ensureTraversable(dir, base string, logger *slog.Logger) error {
	if !r.asOther() {
		return nil
	}
	type change struct {
		dir      string
		from, to fs.FileMode
		above    bool
	}
	var changes []change
	above := false
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgembed: checking %s: %w", d, err)
		}
		if !r.canSearch(fi) {
			from := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			changes = append(changes, change{dir: d, from: from, to: from | 0o001, above: above})
		}
		if d == base {
			above = true
		}
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	for _, c := range changes {
		if c.above {
			logger.Warn(fmt.Sprintf("pgembed: PostgreSQL runs as user %s, which cannot reach %s: adding o+x (search only) to %s, %s -> %s; "+
				"to avoid this, run as a non-root user or put the data folder where %s can reach it",
				r.userName, dir, c.dir, c.from.Perm(), c.to.Perm(), r.userName),
				"dir", c.dir, "from", c.from.Perm().String(), "to", c.to.Perm().String())
		}
	}
	for _, c := range changes {
		if err := os.Chmod(c.dir, c.to); err != nil {
			return fmt.Errorf("pgembed: adding o+x to %s so user %s can reach the cluster folder: %w", c.dir, r.userName, err)
		}
		if !c.above {
			logger.Info("pgembed: added o+x to a folder so the postgres user can reach the cluster", "dir", c.dir, "mode", c.to.Perm().String())
		}
	}
	return nil
}

func (r runner) canSearch(fi fs.FileInfo) bool {
	perm := fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if int(st.Uid) == r.uid {
			return perm&0o100 != 0
		}
		if int(st.Gid) == r.gid {
			return perm&0o010 != 0
		}
	}
	return perm&0o001 != 0
}

// ensureOwned hands an existing data dir to the server user, e.g. one
// created by an earlier run as a different user; postgres refuses to start
// on a data dir it does not own.
func (r runner) ensureOwned(dataDir string, logger *slog.Logger) error {
	if !r.asOther() {
		return nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("pgembed: checking %s: %w", dataDir, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == r.uid {
		return nil
	}
	logger.Info("pgembed: giving existing data dir to the postgres user", "dir", dataDir)
	return filepath.WalkDir(dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return r.chown(path)
	})
}

// prepareSocketDir creates the socket dir 0700 for the server user. The
// fallback location lives in a shared temp folder, so a pre-existing
// directory must not be a symlink and, when we cannot take it over, must
// already be ours.
func (r runner) prepareSocketDir(dir string, logger *slog.Logger) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgembed: creating socket dir %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pgembed: checking socket dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pgembed: socket dir %s exists and is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !r.asOther() && int(st.Uid) != r.uid {
		return fmt.Errorf("pgembed: socket dir %s belongs to uid %d, not to us (uid %d)", dir, st.Uid, r.uid)
	}
	if err := r.chown(dir); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pgembed: restricting socket dir %s: %w", dir, err)
	}
	return r.ensureTraversable(filepath.Dir(dir), dir, logger)
}

// prepareLogFile creates the log file ahead of pg_ctl, which opens it as the
// server user and could not create it in a folder owned by us.
func (r runner) prepareLogFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: creating %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgembed: creating %s: %w", path, err)
	}
	return r.chown(path)
}
