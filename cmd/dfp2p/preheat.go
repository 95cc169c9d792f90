package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/oci"
	"github.com/dfp2p/dfp2p/tracker/preheat"
)

// addPreheatFlags adds the tracker's image-preheat flags.
func addPreheatFlags(f *pflag.FlagSet) {
	f.StringSlice("preheat-registry", nil, "registry NAME=URL for image preheat, e.g. reg.local:5000=http://10.0.0.9:5000 (repeatable; default https://NAME)")
	f.String("preheat-auth-file", "", "registry accounts for image preheat, Docker config.json format (mode 0600)")
}

// registryMap parses NAME=URL pairs.
func registryMap(kvs []string, flag string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		name, u, ok := strings.Cut(kv, "=")
		if !ok || name == "" || u == "" {
			return nil, usagef("%s %q: want NAME=URL", flag, kv)
		}
		out[name] = u
	}
	return out, nil
}

func newPreheatCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "preheat URL|IMAGE",
		Short: "Have the tracker's seed (and --peers of the daemons) fetch a file or an image's layers ahead of pulls",
		Long: `preheat asks the tracker (its HTTP API, --tracker-api) to fetch a URL, or every
layer and the config of an image for one platform, into its seed cache, and,
with --peers, into a count (3) or share (30%) of the live daemons spread over
regions and zones. Later pulls then read nothing from the origin. It prints
the job ID on stdout and, unless --wait=false, follows the job to its end:
exit 0 when it succeeded, 1 when it failed, 2 on usage errors.

Starting a job needs a token with the preheat scope (--token, DFP2P_TOKEN); on
the tracker's host the tracker's local token (--token-file, default
DIR/api-token of the tracker's default data dir) is used when readable.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("preheat takes exactly one URL or image reference (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: runPreheat,
	}
	f := cmd.Flags()
	f.String("tracker-api", "http://127.0.0.1:65010", "tracker HTTP API (env DFP2P_TRACKER_API)")
	f.String("token", "", "bearer token with the preheat scope (env DFP2P_TOKEN)")
	f.String("token-file", filepath.Join(defaultDataDir("tracker"), httpapi.LocalTokenFile), "file holding the token, used when --token is empty")
	f.String("platform", "", "image platform os/arch[/variant] (default linux/amd64)")
	f.String("peers", "", "also warm this many live daemons (3) or this share of them (30%)")
	f.StringArrayP("header", "H", nil, "request header for the origin of a URL, 'Name: value' (repeatable; sent to the seed only)")
	f.String("digest", "", "expected sha256:HEX of a URL's file; also names the task (as for get)")
	f.String("tag", "", "extra label that separates tasks with the same URL (as for get)")
	f.Bool("wait", true, "follow the job until it ends; the exit code tells the outcome")
	f.Duration("timeout", 0, "give up waiting after this long (0 = no limit; the job goes on)")
	f.Bool("no-progress", false, "do not print progress while waiting")
	return cmd
}

func runPreheat(cmd *cobra.Command, args []string) error {
	v, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	target := args[0]
	req := preheat.Request{Peers: v.GetString("peers")}
	if _, err := preheat.ParseCount(req.Peers); err != nil {
		return usagef("--peers: %v", err)
	}
	if strings.Contains(target, "://") {
		if _, err := content.ParseURL(target); err != nil {
			return usagef("%v", err)
		}
		hdr, err := parseHeaders(v.GetStringSlice("header"))
		if err != nil {
			return usagef("%v", err)
		}
		if d := v.GetString("digest"); d != "" {
			if _, err := content.ParseDigest(d); err != nil {
				return usagef("%v", err)
			}
		}
		if v.GetString("platform") != "" {
			return usagef("--platform applies to images, not URLs")
		}
		req.URL, req.Header, req.Digest, req.Tag = target, hdr, v.GetString("digest"), v.GetString("tag")
	} else {
		if _, err := oci.ParseRef(target); err != nil {
			return usagef("%v", err)
		}
		if _, err := oci.ParsePlatform(v.GetString("platform")); err != nil {
			return usagef("--platform: %v", err)
		}
		if len(v.GetStringSlice("header")) > 0 || v.GetString("digest") != "" || v.GetString("tag") != "" {
			return usagef("-H, --digest and --tag apply to URLs; name an image by digest as REF@sha256:HEX")
		}
		req.Image, req.Platform = target, v.GetString("platform")
	}
	token := v.GetString("token")
	if token == "" {
		path := v.GetString("token-file")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			token = strings.TrimSpace(string(b))
		case cmd.Flags().Changed("token-file") || os.Getenv("DFP2P_TOKEN_FILE") != "":
			return usagef("--token-file: %v", err)
		}
	}
	c, err := preheat.NewClient(v.GetString("tracker-api"), token)
	if err != nil {
		return usagef("--tracker-api: %v", err)
	}
	defer c.HTTP.CloseIdleConnections()
	ctx, cancel := withTimeout(cmd.Context(), v.GetDuration("timeout"), " (the job goes on)")
	defer cancel()
	j, err := c.Submit(ctx, req)
	var ae *preheat.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), j.ID)
	if !v.GetBool("wait") {
		return nil
	}
	var progress func(preheat.Job)
	if !v.GetBool("no-progress") && term.IsTerminal(int(os.Stderr.Fd())) {
		progress = func(j preheat.Job) { fmt.Fprintf(os.Stderr, "\r\033[K%s", jobLine(j)) }
	}
	j, err = c.Wait(ctx, j.ID, time.Second, progress)
	if progress != nil {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return fmt.Errorf("preheat %s: %v", j.ID, cause)
		}
		return err
	}
	if j.State != preheat.StateSucceeded {
		return fmt.Errorf("preheat %s failed: %s", j.ID, j.Error)
	}
	fmt.Fprintf(os.Stderr, "preheat %s succeeded: %s\n", j.ID, jobLine(j))
	return nil
}

// jobLine is one line of a job's progress.
func jobLine(j preheat.Job) string {
	done, total, seeded, pDone, pAsked := j.Progress()
	s := fmt.Sprintf("%s %s: %d/%d items on the seed, %s/%s", j.State, j.Target, seeded, len(j.Items), sizeStr(done), sizeStr(total))
	if len(j.Chosen) > 0 {
		s += fmt.Sprintf(", %d peers: %d/%d items done", len(j.Chosen), pDone, pAsked)
	}
	return s
}
