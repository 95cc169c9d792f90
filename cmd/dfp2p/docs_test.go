package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every message docs/ERRORS.md quotes (in a table's message, code or
// refusal column; rows marked † quote the OS or a library) still occurs in
// a Go source file, so the document cannot drift from the code.
func TestErrorsDocMatchesSource(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "ERRORS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testground" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	quoted := regexp.MustCompile("`([^`]+)`")
	checked := 0
	cols := map[int]bool{}
	for i, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = map[int]bool{}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cols) == 0 { // a table's header row: which columns hold messages
			for j, c := range cells {
				switch strings.TrimSpace(c) {
				case "message", "code / message", "refusal":
					cols[j] = true
				}
			}
			if len(cols) == 0 {
				cols[-1] = true // a table without messages
			}
			continue
		}
		if strings.Contains(line, "†") || strings.HasPrefix(line, "|---") {
			continue
		}
		for j, c := range cells {
			if !cols[j] {
				continue
			}
			for _, m := range quoted.FindAllStringSubmatch(c, -1) {
				msg := strings.ReplaceAll(m[1], `\|`, "|")
				if strings.HasPrefix(msg, "--") && !strings.Contains(msg, " ") {
					continue // a flag name, not a message
				}
				checked++
				if !strings.Contains(code, msg) {
					t.Errorf("ERRORS.md line %d quotes %q, which no Go source contains", i+1, msg)
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d messages checked; is the table format still the one this test parses?", checked)
	}
	t.Logf("%d messages checked", checked)
}
