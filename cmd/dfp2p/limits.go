package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/dfp2p/dfp2p/internal/limit"
)

const rateUnits = "bytes/s with units: 100MiB, 1.5GB, 800Mbit (bits with 'bit'); 0 = unlimited"

// addLimitFlags adds the bandwidth limit flags the tracker and the daemon
// share.
func addLimitFlags(f *pflag.FlagSet, download string) {
	f.String("limit-download", "0", "download limit: "+download+"; "+rateUnits)
	f.String("limit-upload", "0", "upload limit: piece bytes served to peers; "+rateUnits)
	f.String("limit-origin", "0", "back-to-source limit: bytes read from origins (they count toward --limit-download too); "+rateUnits)
}

// limitFlags reads the flags addLimitFlags adds; a bad value is a usage
// error.
func limitFlags(v *viper.Viper) (limit.Rates, error) {
	var r limit.Rates
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"limit-download", &r.Download}, {"limit-upload", &r.Upload}, {"limit-origin", &r.Origin}} {
		n, err := limit.ParseRate(strings.TrimSpace(v.GetString(f.name)))
		if err != nil {
			return r, usagef("--%s: %v", f.name, err)
		}
		*f.dst = n
	}
	return r, nil
}

func newLimitsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "limits [--daemon URL | --tracker-api URL] [--set download=50MiB ...]",
		Short: "Show or change the bandwidth limits of a running daemon or tracker",
		Long: "Show or change the bandwidth limits of a running daemon (default, --daemon) or tracker (--tracker-api).\n" +
			"Directions: download, upload, origin; values in " + rateUnits + ".\n" +
			"Changing needs an admin token (--token or DFP2P_TOKEN; the process's own DIR/api-token works).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("limits takes no arguments (got %q); use --set DIRECTION=RATE", args[0])
			}
			return nil
		},
		RunE: runLimits,
	}
	f := cmd.Flags()
	f.String("daemon", "", "daemon API, http://HOST:PORT (env DFP2P_DAEMON; default http://127.0.0.1:65000)")
	f.String("tracker-api", "", "tracker API, http://HOST:PORT (env DFP2P_TRACKER_API), instead of a daemon")
	f.StringSlice("set", nil, "DIRECTION=RATE to change, e.g. download=50MiB (repeatable or comma-separated)")
	f.String("token", "", "bearer token for the API (env DFP2P_TOKEN); changing limits needs the admin scope")
	return cmd
}

func runLimits(cmd *cobra.Command, _ []string) error {
	v, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	daemonURL, trackerURL := v.GetString("daemon"), v.GetString("tracker-api")
	if daemonURL != "" && trackerURL != "" {
		return usagef("give --daemon or --tracker-api, not both")
	}
	base := daemonURL
	switch {
	case trackerURL != "":
		base = trackerURL
	case base == "":
		base = "http://127.0.0.1:65000"
	}
	if _, err := limit.BaseURL(base); err != nil {
		return usagef("%v", err)
	}
	var u limit.Update
	seen := map[string]bool{}
	for _, kv := range v.GetStringSlice("set") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || seen[name] {
			return usagef("--set %q: want DIRECTION=RATE, each direction once (download, upload, origin)", kv)
		}
		seen[name] = true
		n, err := limit.ParseRate(val)
		if err != nil {
			return usagef("--set %s: %v", name, err)
		}
		r := limit.Rate(n)
		switch name {
		case limit.Download:
			u.Download = &r
		case limit.Upload:
			u.Upload = &r
		case limit.Origin:
			u.Origin = &r
		default:
			return usagef("--set %q: unknown direction %q (want download, upload or origin)", kv, name)
		}
	}
	c := &limit.Client{Base: base, Token: v.GetString("token")}
	var r limit.Rates
	if len(seen) > 0 {
		r, err = c.Put(cmd.Context(), u)
	} else {
		r, err = c.Get(cmd.Context())
	}
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, d := range []struct {
		name string
		v    int64
	}{{limit.Download, r.Download}, {limit.Upload, r.Upload}, {limit.Origin, r.Origin}} {
		if d.v == 0 {
			fmt.Fprintf(out, "%-9s unlimited\n", d.name)
		} else {
			fmt.Fprintf(out, "%-9s %s (%d B/s)\n", d.name, limit.FormatRate(d.v), d.v)
		}
	}
	return nil
}
