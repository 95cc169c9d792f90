package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/dfp2p/dfp2p/client"
	"github.com/dfp2p/dfp2p/internal/httpapi"
)

// defaultDaemonAPI is the daemon's default API address (serve.go).
const defaultDaemonAPI = "http://127.0.0.1:65000"

// newCacheCmds are the commands that look at and manage a running daemon's
// cache through its API: ls, stat, gc, pin, unpin and cache verify.
func newCacheCmds() []*cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the daemon's cached tasks",
		Args:  noArgs,
		RunE: withClient(func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, _ []string) error {
			tasks, err := c.Tasks(ctx)
			if err != nil {
				return err
			}
			if v.GetString("output") == "json" {
				return writeJSON(w, tasks)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSIZE\tPIECES\tCOMPLETE\tPINNED\tLAST USED\tURL")
			for _, t := range tasks {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", t.ID.Short(), sizeStr(t.Length), t.Held, t.Pieces,
					yesNo(t.Complete), yesNo(t.Pinned), ago(t.LastAccess), t.URL)
			}
			return tw.Flush()
		}),
	}
	stat := &cobra.Command{
		Use:   "stat URL|TASK",
		Short: "Show one cached task, by URL (as get names it) or task ID (or a unique prefix, or sha256:HEX)",
		Args:  oneArg("stat", "a URL or a task ID"),
		RunE: withClient(func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, args []string) error {
			t, err := c.Resolve(ctx, args[0], v.GetString("tag"))
			if err != nil {
				return err
			}
			if v.GetString("output") == "json" {
				return writeJSON(w, t)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
			fmt.Fprintf(tw, "id:\t%s\n", t.ID)
			fmt.Fprintf(tw, "url:\t%s\n", t.URL)
			fmt.Fprintf(tw, "size:\t%s (%d bytes)\n", sizeStr(t.Length), t.Length)
			fmt.Fprintf(tw, "held:\t%s in %d of %d pieces of %s\n", sizeStr(t.Bytes), t.Held, t.Pieces, sizeStr(t.PieceSize))
			fmt.Fprintf(tw, "complete:\t%s\n", yesNo(t.Complete))
			fmt.Fprintf(tw, "pinned:\t%s\n", yesNo(t.Pinned))
			fmt.Fprintf(tw, "downloading:\t%s\n", yesNo(t.Active))
			fmt.Fprintf(tw, "created:\t%s\n", stamp(t.CreatedAt))
			fmt.Fprintf(tw, "last used:\t%s (%s)\n", stamp(t.LastAccess), ago(t.LastAccess))
			if s := t.Stats; s != nil {
				fmt.Fprintf(tw, "last download:\t%s from peers, %s from seed, %s from origin, %d bad pieces\n",
					sizeStr(s.PeerBytes), sizeStr(s.SeedBytes), sizeStr(s.OriginBytes), s.BadPieces)
			}
			return tw.Flush()
		}),
	}
	stat.Flags().String("tag", "", "the --tag the URL was fetched with")

	gc := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Run garbage collection now (TTL, then watermarks; pinned and active tasks stay); needs an admin token",
		Args:  noArgs,
		RunE: withClient(func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, _ []string) error {
			res, err := c.GC(ctx, v.GetBool("dry-run"))
			if err != nil {
				return err
			}
			if v.GetString("output") == "json" {
				return writeJSON(w, res)
			}
			verb, total := "removed", "freed"
			if res.DryRun {
				verb, total = "would remove", "would free"
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, r := range res.Removed {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", verb, r.ID.Short(), sizeStr(r.Bytes), r.Reason, r.URL)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s %s (%d bytes) from %d tasks\n", total, sizeStr(res.FreedBytes), res.FreedBytes, len(res.Removed))
			if res.Warning != "" {
				fmt.Fprintln(os.Stderr, "dfp2p: warning: "+oneLine(res.Warning))
			}
			return nil
		}),
	}
	gc.Flags().Bool("dry-run", false, "only print what would be removed")

	cache := &cobra.Command{Use: "cache", Short: "Check the daemon's cache"}
	verify := &cobra.Command{
		Use:   "verify [--repair] [URL|TASK]",
		Short: "Rehash every cached piece against its CID and drop bad ones; --repair fetches them again; needs an admin token",
		Long: "Rehash every cached piece (of one task, or of all) against its CID, through the store's reader\n" +
			"(so an encrypted cache is checked too), and drop the bad ones. Exits 1 when bad pieces were\n" +
			"found (or tasks stay incomplete) without --repair, or when a repair failed.\n" +
			"--repair downloads the missing pieces of every task that was complete once through the\n" +
			"normal path (peers, tracker, origin).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("cache verify takes at most one URL or task ID (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: withClient(func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, args []string) error {
			req := client.VerifyRequest{Repair: v.GetBool("repair")}
			if len(args) == 1 {
				t, err := c.Resolve(ctx, args[0], v.GetString("tag"))
				if err != nil {
					return err
				}
				req.Task = t.ID
			}
			asJSON := v.GetString("output") == "json"
			var results []client.VerifyTask
			sum, err := c.Verify(ctx, req, func(t client.VerifyTask) {
				if asJSON {
					results = append(results, t)
					return
				}
				if len(t.Bad) > 0 || t.Refetched > 0 || t.Error != "" || (t.Missing > 0 && !t.Complete) {
					fmt.Fprintf(w, "%s  checked %d, bad %d%s, dropped %d, missing %d, refetched %d, complete %s%s  %s\n",
						t.ID.Short(), t.Checked, len(t.Bad), pieceList(t.Bad), t.Dropped, t.Missing, t.Refetched, yesNo(t.Complete),
						errSuffix(t.Error), t.URL)
				}
			})
			if err != nil {
				return err
			}
			if asJSON {
				if results == nil {
					results = []client.VerifyTask{}
				}
				if err := writeJSON(w, struct {
					Tasks   []client.VerifyTask  `json:"tasks"`
					Summary client.VerifySummary `json:"summary"`
				}{results, sum}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "checked %d pieces in %d tasks: %d bad, %d dropped, %d refetched, %d failed, %d incomplete\n",
					sum.Checked, sum.Tasks, sum.Bad, sum.Dropped, sum.Refetched, sum.Failed, sum.Incomplete)
			}
			switch {
			case sum.Failed > 0:
				return fmt.Errorf("%d tasks could not be verified or repaired", sum.Failed)
			case !req.Repair && sum.Bad > 0:
				return fmt.Errorf("%d bad pieces found and dropped; run dfp2p cache verify --repair to fetch them again", sum.Bad)
			case sum.Incomplete > 0 && !req.Repair:
				return fmt.Errorf("%d tasks are missing pieces; run dfp2p cache verify --repair", sum.Incomplete)
			case sum.Incomplete > 0:
				return fmt.Errorf("%d tasks are still incomplete after the repair", sum.Incomplete)
			}
			return nil
		}),
	}
	verify.Flags().Bool("repair", false, "fetch bad and missing pieces again (peers, tracker, origin)")
	verify.Flags().String("tag", "", "the --tag the URL was fetched with")
	cache.AddCommand(verify)

	pin := pinCmd(true)
	unpin := pinCmd(false)
	cmds := []*cobra.Command{ls, stat, gc, pin, unpin, verify}
	for _, c := range cmds {
		addDaemonFlags(c)
	}
	return []*cobra.Command{ls, stat, gc, pin, unpin, cache}
}

func pinCmd(pinned bool) *cobra.Command {
	name, short := "pin", "Keep a cached task from garbage collection; needs a preheat token"
	if !pinned {
		name, short = "unpin", "Let garbage collection remove a task again; needs a preheat token"
	}
	cmd := &cobra.Command{
		Use:   name + " URL|TASK",
		Short: short,
		Args:  oneArg(name, "a URL or a task ID"),
		RunE: withClient(func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, args []string) error {
			t, err := c.Resolve(ctx, args[0], v.GetString("tag"))
			if err != nil {
				return err
			}
			if t, err = c.Pin(ctx, t.ID, pinned); err != nil {
				return err
			}
			if v.GetString("output") == "json" {
				return writeJSON(w, t)
			}
			fmt.Fprintf(w, "%sned %s %s\n", name, t.ID, t.URL)
			return nil
		}),
	}
	cmd.Flags().String("tag", "", "the --tag the URL was fetched with")
	return cmd
}

func addDaemonFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("daemon", defaultDaemonAPI, "daemon API, http://HOST:PORT (env DFP2P_DAEMON)")
	f.String("token", "", "bearer token for the daemon's API (env DFP2P_TOKEN; default on this host: DATA_DIR/api-token when readable)")
	f.String("data-dir", defaultDataDir("daemon"), "the daemon's data dir, for its local API token")
	f.StringP("output", "o", "table", "output format: table or json")
	f.Duration("timeout", 0, "give up after this long (0 = no limit)")
}

type clientRun func(ctx context.Context, c *client.Client, v *viper.Viper, w io.Writer, args []string) error

// withClient loads the configuration, checks the common flags and builds
// the client for run.
func withClient(run clientRun) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		v, err := loadConfig(cmd)
		if err != nil {
			return err
		}
		switch o := v.GetString("output"); o {
		case "table", "json":
		default:
			return usagef("-o %q: want table or json", o)
		}
		addr := v.GetString("daemon")
		if addr == "" {
			addr = defaultDaemonAPI
		}
		token := v.GetString("token")
		if token == "" && client.IsLoopback(addr) {
			// The daemon on this host: its local token, when we may read it
			// (root or the daemon's user). Never sent to another host.
			if b, err := os.ReadFile(filepath.Join(v.GetString("data-dir"), httpapi.LocalTokenFile)); err == nil {
				token = strings.TrimSpace(string(b))
			}
		}
		c, err := client.NewClient(client.Options{Daemon: addr, Token: token})
		if err != nil {
			return usagef("%v", err)
		}
		ctx, cancel := withTimeout(cmd.Context(), v.GetDuration("timeout"), "")
		defer cancel()
		return withCause(ctx, run(ctx, c, v, cmd.OutOrStdout(), args))
	}
}

func oneArg(name, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("%s takes exactly one argument, %s (got %d)", name, what, len(args))
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// ago is a short age: "12s ago", "5m ago", "3h ago", "2d ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// pieceList shows up to 8 piece indices: " [1 4 7]", " [0 1 ... (+12)]".
func pieceList(p []int) string {
	if len(p) == 0 {
		return ""
	}
	const show = 8
	s := " " + fmt.Sprint(p[:min(len(p), show)])
	if len(p) > show {
		s = strings.TrimSuffix(s, "]") + fmt.Sprintf(" ... (+%d)]", len(p)-show)
	}
	return s
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ", error: " + e
}
