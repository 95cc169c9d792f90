package oci

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// LoadCredentials reads registry accounts from a file in the format of
// Docker's config.json ({"auths": {"REGISTRY": {"auth": base64("user:pass")}}},
// or "username"/"password" instead of "auth"). The file holds secrets: it is
// refused when group or others may read it.
func LoadCredentials(path string) (map[string]Credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by group or others (mode %o): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s: larger than 1 MiB", path)
	}
	var doc struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	out := map[string]Credential{}
	for name, a := range doc.Auths {
		host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(name, "https://"), "http://"), "/")
		host = strings.TrimSuffix(host, "/v1")
		host = strings.TrimSuffix(host, "/v2")
		if host == "index.docker.io" || host == "registry-1.docker.io" {
			host = DefaultRegistry
		}
		c := Credential{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: registry %s: auth is not base64", path, name)
			}
			u, p, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%s: registry %s: auth is not user:password", path, name)
			}
			c = Credential{Username: u, Password: p}
		}
		if c.Username == "" {
			return nil, fmt.Errorf("%s: registry %s: no username", path, name)
		}
		out[strings.ToLower(host)] = c
	}
	return out, nil
}
