package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"gopkg.in/yaml.v3"
)

// maxConfigSize bounds a --config file. Real ones are a few hundred bytes.
const maxConfigSize = 1 << 20

// readConfigFile reads a --config file, refusing one larger than
// maxConfigSize without reading more than one byte past the limit (the path
// may name a device or a FIFO).
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigSize)
	}
	return b, nil
}

// parseConfigFile parses the bytes of a --config file: one YAML document
// holding a mapping of option names (flag names without dashes) to values.
// known holds the names the command accepts; any other name, and "config"
// itself, is an error. An empty document (nothing, comments only, "---" or
// null) yields an empty map. A file larger than maxConfigSize, a document
// that is not a mapping, or a second non-empty document is an error. Values
// are not checked here: the command reads them through viper as it reads
// flags.
func parseConfigFile(b []byte, known map[string]bool) (map[string]any, error) {
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		if !emptyDoc(&extra) {
			return nil, fmt.Errorf("line %d: more than one YAML document", extra.Line)
		}
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	if emptyDoc(&doc) {
		return map[string]any{}, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping of option names to values, got %s", root.Line, kindName(root))
	}
	raw := map[string]any{}
	if err := root.Decode(&raw); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] || k == "config" {
			return nil, fmt.Errorf("unknown key %q", k)
		}
	}
	return raw, nil
}

// emptyDoc reports whether n is a document with no content or a null.
func emptyDoc(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		n = n.Content[0]
	}
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	default:
		return "something else"
	}
}
