// Package setup owns writing container runtimes' registry-mirror
// configuration (containerd hosts.toml, Docker daemon.json and its systemd
// drop-in, CRI-O registries.conf.d) and the preflight checks of those
// runtimes' own configs. It must not talk to the network or start, stop or
// restart services: it tells the user what to restart.
//
// Every file it writes starts with the line ManagedHeader (daemon.json, which
// is JSON, is edited in place instead). A file that was there before is kept
// as FILE.dfp2p-backup the first time it is changed, files are replaced
// atomically (temp file + rename), running the same command twice changes
// nothing, and the Undo option restores the backups or removes the files
// dfp2p created.
package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

const (
	// DefaultProxy is the daemon's registry mirror and HTTP proxy (its --proxy).
	DefaultProxy = "http://127.0.0.1:65001"
	// ManagedHeader starts the first line of every file dfp2p writes.
	ManagedHeader = "# managed by dfp2p"
	// BackupSuffix is appended to a file's name for the copy of what was
	// there before dfp2p first changed it.
	BackupSuffix = ".dfp2p-backup"
)

// Action says what happened (or, in a dry run, would happen) to a file.
type Action string

// The actions a Change reports.
const (
	Created   Action = "created"   // the file did not exist
	Updated   Action = "updated"   // a file dfp2p manages got new content
	Replaced  Action = "replaced"  // a file dfp2p did not write was backed up, then rewritten
	Unchanged Action = "unchanged" // already as wanted
	Restored  Action = "restored"  // undo: the backup was moved back
	Removed   Action = "removed"   // undo: a file dfp2p created was deleted
	Skipped   Action = "skipped"   // left alone; Note says why
)

// Change is one file the command touched or looked at.
type Change struct {
	Path    string
	Action  Action
	Backup  string // the backup written (Replaced) or moved back (Restored)
	Note    string
	Content []byte // what was (dry run: would be) written; nil for undo and Unchanged
}

// Severity of a preflight problem: warnings make --strict fail; notes never do.
type Severity string

// Severities.
const (
	Warning Severity = "warning"
	Note    Severity = "note"
)

// Problem is one thing wrong in a runtime's own configuration, with its fix.
type Problem struct {
	Check    string // stable name, e.g. "config-path-unset"
	Severity Severity
	Key      string // the configuration key the message is about, if any; String puts it first
	Message  string
	Fix      string
}

// String is the problem on one line: "check: key message; fix: fix".
func (p Problem) String() string {
	s := p.Check + ": "
	if p.Key != "" {
		s += p.Key + " "
	}
	return s + p.Message + "; fix: " + p.Fix
}

// Snippet is text to show the user verbatim, such as a file to create by hand.
type Snippet struct {
	Title   string
	Content string
}

// Report is what a command did and found. Commands print Changes, Snippets,
// Problems and Notes, and end with Restart.
type Report struct {
	DryRun   bool
	Changes  []Change
	Snippets []Snippet
	Problems []Problem
	Notes    []string
	Restart  string // e.g. "restart containerd to apply: systemctl restart containerd"
}

// Warnings counts the problems of severity Warning.
func (r *Report) Warnings() int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == Warning {
			n++
		}
	}
	return n
}

// OptionError is a bad option value (the command's usage error).
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

func optionErrorf(option, format string, a ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, a...)}
}

// PreflightError is returned with Strict when preflight found warnings;
// nothing was written.
type PreflightError struct {
	File     string
	Warnings int
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("%d preflight warning(s) for %s and --strict is set: nothing written", e.Warnings, e.File)
}

// ProxyURL is the daemon's mirror address, parsed from --proxy.
type ProxyURL struct {
	Scheme string // http or https
	Host   string // host:port
}

// String is scheme://host, without a trailing slash.
func (p ProxyURL) String() string { return p.Scheme + "://" + p.Host }

// ParseProxy accepts "HOST:PORT" (taken as http) or "http(s)://HOST[:PORT][/]";
// empty means DefaultProxy.
func ParseProxy(s string) (ProxyURL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultProxy
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return ProxyURL{}, optionErrorf("--proxy", "%q is not a URL", s)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return ProxyURL{}, optionErrorf("--proxy", "%q: scheme must be http or https", s)
	case u.Host == "" || u.Hostname() == "":
		return ProxyURL{}, optionErrorf("--proxy", "%q has no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return ProxyURL{}, optionErrorf("--proxy", "%q: want scheme://host:port with no path, query or user", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return ProxyURL{}, optionErrorf("--proxy", "%q: bad port", s)
		}
	}
	return ProxyURL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// CheckRegistry validates a registry host name as images name it:
// HOST[:PORT] with no scheme or path ("docker.io", "registry.local:5000",
// "[::1]:5000").
func CheckRegistry(r string) error {
	if r == "" {
		return optionErrorf("--registry", "empty registry name")
	}
	if strings.Contains(r, "://") || strings.ContainsAny(r, "/\\ \t\r\n") {
		return optionErrorf("--registry", "%q: want a registry host name like ghcr.io or registry.local:5000 (no scheme or path)", r)
	}
	switch strings.ToLower(r) {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return optionErrorf("--registry", "%q: images name Docker Hub docker.io; use --registry docker.io", r)
	}
	host, port := r, ""
	if h, p, err := net.SplitHostPort(r); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(r, "[") && strings.HasSuffix(r, "]") {
		host = r[1 : len(r)-1]
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return optionErrorf("--registry", "%q: bad port", r)
		}
	}
	if net.ParseIP(host) == nil && !hostnameRE.MatchString(host) {
		return optionErrorf("--registry", "%q is not a valid registry host name", r)
	}
	return nil
}

// fileState is a file and its backup as found on disk.
type fileState struct {
	path         string
	cur          []byte
	exists       bool
	mode         fs.FileMode
	backup       []byte
	backupExists bool
}

func (s *fileState) backupPath() string { return s.path + BackupSuffix }

// managed reports whether the current file is one dfp2p wrote.
func (s *fileState) managed() bool { return s.exists && isManaged(s.cur) }

func isManaged(b []byte) bool { return bytes.HasPrefix(b, []byte(ManagedHeader)) }

func readState(path string) (*fileState, error) {
	s := &fileState{path: path}
	var err error
	if s.cur, s.mode, s.exists, err = readOptional(path); err != nil {
		return nil, err
	}
	if s.backup, _, s.backupExists, err = readOptional(s.backupPath()); err != nil {
		return nil, err
	}
	return s, nil
}

// readOptional reads a regular file; a missing one is not an error.
func readOptional(path string) ([]byte, fs.FileMode, bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, false, err
	}
	return b, fi.Mode().Perm(), true, nil
}

// render builds the wanted content of a managed file from base: the file
// that was there before dfp2p (the backup, or the current foreign file), nil
// if there was none. The note explains anything the user should know.
type render func(base []byte) (content []byte, note string)

// applyManaged makes path hold what render wants, keeping a backup of a file
// dfp2p did not write. In a dry run it only reports.
func applyManaged(path string, perm fs.FileMode, r render, dryRun bool) (Change, error) {
	s, err := readState(path)
	if err != nil {
		return Change{}, err
	}
	var base []byte
	switch {
	case s.managed() && s.backupExists:
		base = s.backup
	case s.exists && !s.managed():
		if s.backupExists {
			return Change{}, fmt.Errorf("%s was rewritten by something else after dfp2p changed it, and %s already holds the original: move one of them away and run again",
				path, s.backupPath())
		}
		base = s.cur
	}
	want, note := r(base)
	if s.exists && bytes.Equal(s.cur, want) {
		return Change{Path: path, Action: Unchanged}, nil
	}
	c := Change{Path: path, Note: note, Content: want}
	switch {
	case !s.exists:
		c.Action = Created
	case s.managed():
		c.Action = Updated
	default:
		c.Action = Replaced
		c.Backup = s.backupPath()
	}
	if s.exists {
		perm = s.mode
	}
	if dryRun {
		return c, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return Change{}, err
	}
	if c.Action == Replaced {
		if err := fsutil.WriteFileAtomic(c.Backup, s.cur, s.mode); err != nil {
			return Change{}, fmt.Errorf("backing up %s: %w", path, err)
		}
	}
	if err := fsutil.WriteFileAtomic(path, want, perm); err != nil {
		return Change{}, err
	}
	return c, nil
}

// undoManaged restores the backup of path or removes the file dfp2p created.
// A file dfp2p did not write is left alone. ok is false when there was
// nothing to undo. With removeDir, an emptied parent directory goes too.
func undoManaged(path string, removeDir, dryRun bool) (c Change, ok bool, err error) {
	s, err := readState(path)
	if err != nil {
		return Change{}, false, err
	}
	switch {
	case s.exists && !s.managed():
		c = Change{Path: path, Action: Skipped, Note: "not written by dfp2p; left alone"}
		if s.backupExists {
			c.Note += " (so is " + s.backupPath() + ")"
		}
		return c, true, nil
	case s.backupExists:
		c = Change{Path: path, Action: Restored, Backup: s.backupPath()}
		if !s.exists {
			c.Note = "the file was gone; its backup is back"
		}
		if !dryRun {
			if err := os.Rename(s.backupPath(), path); err != nil {
				return Change{}, false, err
			}
			syncDir(filepath.Dir(path))
		}
		return c, true, nil
	case s.exists: // managed, no backup: dfp2p created it
		c = Change{Path: path, Action: Removed}
		if !dryRun {
			if err := os.Remove(path); err != nil {
				return Change{}, false, err
			}
			if removeDir {
				_ = os.Remove(filepath.Dir(path)) // only succeeds when empty
			}
			syncDir(filepath.Dir(path))
		}
		return c, true, nil
	}
	return Change{}, false, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// quoteList is "a", "b" with TOML (and JSON) string quoting.
func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlQuote(s)
	}
	return strings.Join(q, ", ")
}

// tomlQuote is s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
