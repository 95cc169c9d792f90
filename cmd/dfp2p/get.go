package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dfp2p/dfp2p/client"
	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
)

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get URL -O PATH",
		Short: "Download a file through the swarm; it appears at PATH only complete and verified",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("get takes exactly one URL (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: runGet,
	}
	f := cmd.Flags()
	f.StringP("output", "O", "", "where to write the file (required)")
	f.StringArrayP("header", "H", nil, "request header for the origin, 'Name: value' (repeatable)")
	f.String("digest", "", "expected sha256:HEX of the file; also names the task")
	f.String("tag", "", "extra label that separates tasks with the same URL")
	f.String("daemon", "", "local daemon API, http://HOST:PORT (env DFP2P_DAEMON)")
	f.StringSlice("tracker", nil, "tracker multiaddr for an in-process peer when no daemon is given (repeatable)")
	f.StringSlice("bootstrap", nil, "DHT peer multiaddr for an in-process peer: find holders without a tracker (repeatable)")
	f.String("join", "", "join token of a closed cluster, for an in-process peer (env DFP2P_JOIN)")
	f.String("token", "", "bearer token for the daemon's API (env DFP2P_TOKEN; not needed on the daemon's own host)")
	f.Duration("timeout", 0, "give up after this long (0 = no limit)")
	f.Bool("no-progress", false, "do not draw a progress bar")
	return cmd
}

func runGet(cmd *cobra.Command, args []string) error {
	v, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	log, err := newLogger(v)
	if err != nil {
		return err
	}
	if !cmd.Flags().Changed("log-level") && os.Getenv("DFP2P_LOG_LEVEL") == "" {
		// get reports its outcome in one line; the in-process peer's logs
		// are for --log-level debug.
		log = slog.New(slog.DiscardHandler)
	}
	out := v.GetString("output")
	if out == "" {
		return usagef("missing -O PATH")
	}
	if _, err := content.ParseURL(args[0]); err != nil {
		return usagef("%v", err)
	}
	if d := v.GetString("digest"); d != "" {
		if _, err := content.ParseDigest(d); err != nil {
			return usagef("%v", err)
		}
	}
	hdr, err := parseHeaders(v.GetStringSlice("header"))
	if err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := withTimeout(cmd.Context(), v.GetDuration("timeout"), "")
	defer cancel()
	if d := v.GetString("daemon"); d != "" {
		if err := client.CheckDaemon(d); err != nil {
			return usagef("--daemon: %v", err)
		}
	}
	if j := v.GetString("join"); j != "" {
		if _, err := crypto.ParseJoinToken(j); err != nil {
			return usagef("--join: %v", err)
		}
	}
	opts := client.Options{Daemon: v.GetString("daemon"), Trackers: v.GetStringSlice("tracker"),
		Bootstrap: v.GetStringSlice("bootstrap"), Join: v.GetString("join"), Token: v.GetString("token"), Logger: log}
	req := client.Request{URL: args[0], Header: hdr, Digest: v.GetString("digest"), Tag: v.GetString("tag")}

	var bar *progressbar.ProgressBar
	var progress client.Progress
	if !v.GetBool("no-progress") && term.IsTerminal(int(os.Stderr.Fd())) {
		progress = func(done, total int64, st client.Stats) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionShowBytes(true), progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
			}
			if got := st.PeerBytes + st.SeedBytes + st.OriginBytes; got > 0 {
				bar.Describe(fmt.Sprintf("peers %d%% origin %d%%", 100*st.PeerBytes/got, 100*st.OriginBytes/got))
			}
			_ = bar.Set64(done)
		}
	}
	start := time.Now()
	stats, err := client.Get(ctx, opts, req, out, progress)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return withCause(ctx, err)
	}
	if progress != nil {
		fmt.Fprintf(os.Stderr, "%s: done in %s (%s from peers, %s from seed, %s from origin)\n", out,
			time.Since(start).Round(time.Millisecond), sizeStr(stats.PeerBytes), sizeStr(stats.SeedBytes), sizeStr(stats.OriginBytes))
	}
	return nil
}

// parseHeaders turns "Name: value" strings into a header, refusing anything
// that could smuggle a second header line.
func parseHeaders(hs []string) (http.Header, error) {
	out := http.Header{}
	for _, h := range hs {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("header %q: want 'Name: value'", h)
		}
		if strings.ContainsAny(h, "\r\n\x00") {
			return nil, fmt.Errorf("header %q: control characters are not allowed", name)
		}
		for _, c := range name {
			if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
				return nil, fmt.Errorf("header name %q is not a valid token", name)
			}
		}
		out.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	}
	if err := content.CheckHeader(out); err != nil {
		return nil, err
	}
	return out, nil
}

func sizeStr(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
