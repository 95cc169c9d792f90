package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

const (
	// DefaultDaemonJSON is dockerd's configuration file.
	DefaultDaemonJSON = "/etc/docker/daemon.json"
	// DefaultDockerDropinDir is where docker.service's systemd drop-ins go.
	DefaultDockerDropinDir = "/etc/systemd/system/docker.service.d"
	// DockerDropinName is the drop-in dfp2p writes into that directory.
	DockerDropinName = "dfp2p-proxy.conf"

	mirrorsKey = "registry-mirrors"
)

// DockerOptions configures Docker.
type DockerOptions struct {
	DaemonJSON    string // default DefaultDaemonJSON
	Proxy         string // the daemon's mirror, see ParseProxy; default DefaultProxy
	SystemdDropin string // directory to write DockerDropinName into; "" only shows it
	Undo          bool   // take dfp2p's mirror out again (restoring the backup when nothing else changed), remove the drop-in
	DryRun        bool
	Strict        bool // preflight warnings are an error and nothing is written
}

// Docker puts the dfp2p mirror first in daemon.json's registry-mirrors,
// keeping every other key and mirror, and writes (or shows) a systemd drop-in
// that sends dockerd's registry traffic through the dfp2p HTTP proxy.
func Docker(o DockerOptions) (*Report, error) {
	if o.DaemonJSON == "" {
		o.DaemonJSON = DefaultDaemonJSON
	}
	proxy, err := ParseProxy(o.Proxy)
	if err != nil {
		return nil, err
	}
	rep := &Report{DryRun: o.DryRun, Restart: "restart docker to apply: systemctl restart docker"}
	dropin := ""
	if o.SystemdDropin != "" {
		dropin = filepath.Join(o.SystemdDropin, DockerDropinName)
		rep.Restart = "restart docker to apply: systemctl daemon-reload && systemctl restart docker"
	}
	if o.Undo {
		c, ok, err := undoDaemonJSON(o.DaemonJSON, proxy, o.DryRun)
		if err != nil {
			return nil, err
		}
		if ok {
			rep.Changes = append(rep.Changes, c)
		}
		if dropin != "" {
			c, ok, err := undoManaged(dropin, false, o.DryRun)
			if err != nil {
				return nil, err
			}
			if ok {
				rep.Changes = append(rep.Changes, c)
			}
		}
		if len(rep.Changes) == 0 {
			rep.Notes = append(rep.Notes, "nothing to undo")
		}
		return rep, nil
	}

	cur, mode, exists, err := readOptional(o.DaemonJSON)
	if err != nil {
		return nil, err
	}
	fields, err := parseJSONObject(cur)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", o.DaemonJSON, err)
	}
	if i := fieldIndex(fields, "proxies"); i >= 0 {
		rep.Problems = append(rep.Problems, Problem{Check: "proxies-override", Severity: Warning,
			Message: fmt.Sprintf("%s sets \"proxies\", which dockerd prefers over the HTTP_PROXY/HTTPS_PROXY environment the drop-in sets", o.DaemonJSON),
			Fix:     "point \"proxies\" at " + proxy.String() + " instead of using the drop-in, or remove it"})
	}
	if o.Strict && rep.Warnings() > 0 {
		return rep, &PreflightError{File: o.DaemonJSON, Warnings: rep.Warnings()}
	}

	mirrors, err := stringArray(fields, mirrorsKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", o.DaemonJSON, err)
	}
	c := Change{Path: o.DaemonJSON, Action: Unchanged}
	if !containsMirror(mirrors, proxy) {
		fields = setField(fields, mirrorsKey, mustJSON(append([]string{proxy.String()}, mirrors...)))
		want := marshalJSONObject(fields)
		c = Change{Path: o.DaemonJSON, Action: Created, Content: want}
		if len(mirrors) > 0 {
			c.Note = "the dfp2p mirror goes first; the other mirrors stay after it"
		}
		if exists {
			c.Action = Updated
			if _, _, bakExists, err := readOptional(o.DaemonJSON + BackupSuffix); err != nil {
				return nil, err
			} else if !bakExists {
				c.Backup = o.DaemonJSON + BackupSuffix
			}
		} else {
			mode = 0o644
		}
		if !o.DryRun {
			if err := os.MkdirAll(filepath.Dir(o.DaemonJSON), 0o755); err != nil {
				return nil, err
			}
			if c.Backup != "" {
				if err := fsutil.WriteFileAtomic(c.Backup, cur, mode); err != nil {
					return nil, fmt.Errorf("backing up %s: %w", o.DaemonJSON, err)
				}
			}
			if err := fsutil.WriteFileAtomic(o.DaemonJSON, want, mode); err != nil {
				return nil, err
			}
		}
	}
	rep.Changes = append(rep.Changes, c)
	rep.Notes = append(rep.Notes,
		"Docker uses registry-mirrors for Docker Hub (docker.io) images only; other registries are reached directly unless dockerd goes through the HTTP proxy (systemd drop-in)")

	content := dockerDropin(proxy)
	if dropin != "" {
		c, err := applyManaged(dropin, 0o644, func([]byte) ([]byte, string) { return content, "" }, o.DryRun)
		if err != nil {
			return nil, err
		}
		rep.Changes = append(rep.Changes, c)
	} else {
		rep.Snippets = append(rep.Snippets, Snippet{
			Title:   "optional: " + filepath.Join(DefaultDockerDropinDir, DockerDropinName) + " (written by --systemd-dropin " + DefaultDockerDropinDir + ")",
			Content: string(content),
		})
	}
	rep.Notes = append(rep.Notes, "with the drop-in, dockerd reaches no registry at all while the dfp2p daemon is down (a proxy has no fallback, unlike registry-mirrors); HTTPS goes through it as an opaque CONNECT tunnel unless the daemon intercepts that host (--proxy-intercept with a CA the host trusts)")
	return rep, nil
}

// dockerDropin is the systemd drop-in that makes dockerd use the dfp2p proxy.
func dockerDropin(p ProxyURL) []byte {
	return []byte(ManagedHeader + ": `dfp2p init docker --systemd-dropin DIR` wrote this file; `dfp2p init docker --systemd-dropin DIR --undo` removes it.\n" +
		"# dockerd sends its registry traffic through the dfp2p daemon's HTTP proxy.\n" +
		"# While the daemon is down, dockerd cannot reach any registry.\n" +
		"[Service]\n" +
		"Environment=\"HTTP_PROXY=" + p.String() + "\"\n" +
		"Environment=\"HTTPS_PROXY=" + p.String() + "\"\n" +
		"Environment=\"NO_PROXY=localhost,127.0.0.0/8,::1\"\n")
}

// undoDaemonJSON takes the dfp2p mirror out of registry-mirrors. When the
// result says what the backup says, the backup itself goes back (byte for
// byte); a daemon.json dfp2p created and nobody added to is removed.
func undoDaemonJSON(path string, proxy ProxyURL, dryRun bool) (Change, bool, error) {
	s, err := readState(path)
	if err != nil {
		return Change{}, false, err
	}
	restore := func(note string) (Change, bool, error) {
		c := Change{Path: path, Action: Restored, Backup: s.backupPath(), Note: note}
		if !dryRun {
			if err := os.Rename(s.backupPath(), path); err != nil {
				return Change{}, false, err
			}
			syncDir(filepath.Dir(path))
		}
		return c, true, nil
	}
	if !s.exists {
		if s.backupExists {
			return restore("the file was gone; its backup is back")
		}
		return Change{}, false, nil
	}
	fields, err := parseJSONObject(s.cur)
	if err != nil {
		return Change{}, false, fmt.Errorf("%s: %v", path, err)
	}
	mirrors, err := stringArray(fields, mirrorsKey)
	if err != nil {
		return Change{}, false, fmt.Errorf("%s: %v", path, err)
	}
	var keep []string
	for _, m := range mirrors {
		if !sameMirror(m, proxy) {
			keep = append(keep, m)
		}
	}
	if len(keep) == len(mirrors) {
		if s.backupExists {
			return Change{Path: path, Action: Skipped, Note: "the dfp2p mirror is not in registry-mirrors; " + s.backupPath() + " left in place"}, true, nil
		}
		return Change{}, false, nil
	}
	var orig []jsonField
	if s.backupExists {
		if orig, err = parseJSONObject(s.backup); err != nil {
			return Change{}, false, fmt.Errorf("%s: %v", s.backupPath(), err)
		}
	}
	if len(keep) == 0 && fieldIndex(orig, mirrorsKey) < 0 {
		fields = deleteField(fields, mirrorsKey)
	} else {
		fields = setField(fields, mirrorsKey, mustJSON(nonNil(keep)))
	}
	if s.backupExists && sameJSON(fields, orig) {
		return restore("")
	}
	if !s.backupExists && len(fields) == 0 {
		c := Change{Path: path, Action: Removed}
		if !dryRun {
			if err := os.Remove(path); err != nil {
				return Change{}, false, err
			}
		}
		return c, true, nil
	}
	c := Change{Path: path, Action: Updated, Note: "took the dfp2p mirror out of registry-mirrors"}
	if s.backupExists {
		c.Note += "; the file changed since, so " + s.backupPath() + " is left in place"
	}
	if !dryRun {
		if err := fsutil.WriteFileAtomic(path, marshalJSONObject(fields), s.mode); err != nil {
			return Change{}, false, err
		}
	}
	return c, true, nil
}

func containsMirror(mirrors []string, p ProxyURL) bool {
	for _, m := range mirrors {
		if sameMirror(m, p) {
			return true
		}
	}
	return false
}

// sameMirror compares as dockerd does after normalising: a trailing slash
// and the case of scheme and host do not matter.
func sameMirror(m string, p ProxyURL) bool {
	return strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(m), "/"), p.String())
}

// ---- JSON objects that keep their key order ----

type jsonField struct {
	Key   string
	Value json.RawMessage
}

// parseJSONObject reads a JSON object keeping its keys in order; empty input
// is an empty object.
func parseJSONObject(b []byte) ([]jsonField, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not valid JSON: %v", err)
		}
		fields = append(fields, jsonField{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the object")
	}
	return fields, nil
}

// marshalJSONObject writes the object with two-space indentation.
func marshalJSONObject(fields []jsonField) []byte {
	var b bytes.Buffer
	if len(fields) == 0 {
		return []byte("{}\n")
	}
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString("  ")
		b.Write(mustJSON(f.Key))
		b.WriteString(": ")
		if err := json.Indent(&b, f.Value, "  ", "  "); err != nil {
			b.Write(f.Value) // parsed from valid JSON; cannot happen
		}
		if i < len(fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func fieldIndex(fields []jsonField, key string) int {
	for i, f := range fields {
		if f.Key == key {
			return i
		}
	}
	return -1
}

func setField(fields []jsonField, key string, v []byte) []jsonField {
	if i := fieldIndex(fields, key); i >= 0 {
		fields[i].Value = v
		return fields
	}
	return append(fields, jsonField{Key: key, Value: v})
}

func deleteField(fields []jsonField, key string) []jsonField {
	if i := fieldIndex(fields, key); i >= 0 {
		return append(fields[:i], fields[i+1:]...)
	}
	return fields
}

func stringArray(fields []jsonField, key string) ([]string, error) {
	i := fieldIndex(fields, key)
	if i < 0 {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal(fields[i].Value, &out); err != nil {
		return nil, fmt.Errorf("%q must be an array of strings", key)
	}
	return out, nil
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// sameJSON reports whether two objects hold the same data, whatever the
// formatting and key order.
func sameJSON(a, b []jsonField) bool {
	var va, vb any
	if json.Unmarshal(marshalJSONObject(a), &va) != nil || json.Unmarshal(marshalJSONObject(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
