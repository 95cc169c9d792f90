package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dfp2p",
		Short:         "Peer-to-peer distribution of files and container images",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version,
	}
	root.PersistentFlags().String("config", "", "YAML config file with the same keys as the flags")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newGetCmd(), newDaemonCmd(), newTrackerCmd())
	root.AddCommand(newInitCmd(), newClusterCmd(), newKeygenCmd())
	root.AddCommand(newLimitsCmd(), newPreheatCmd())
	root.AddCommand(newCacheCmds()...) // cache.go: ls, stat, gc, pin, unpin, cache verify
	root.AddCommand(newConfigCmd())
	registerCompletions(root)
	return root
}

// loadConfig merges, lowest to highest: flag defaults, the YAML file given by
// --config, DFP2P_* environment variables, flags set on the command line.
// Unknown keys in the file are an error.
func loadConfig(cmd *cobra.Command) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("DFP2P")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	known := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return nil, err
	}
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("DFP2P_CONFIG")
	}
	if err := checkEnv(cmd); err != nil {
		return nil, usagef("%v", err)
	}
	if path != "" {
		b, err := readConfigFile(path)
		if err != nil {
			return nil, usagef("config: %v", err)
		}
		raw, err := parseConfigFile(b, known)
		if err != nil {
			return nil, usagef("config %s: %v", path, err)
		}
		if err := normalizeConfig(cmd, raw); err != nil {
			return nil, usagef("config %s: %v", path, err)
		}
		// The map that was checked is the one used: the file is read once.
		if err := v.MergeConfigMap(raw); err != nil {
			return nil, usagef("config %s: %v", path, err)
		}
	}
	return v, nil
}

func newLogger(v *viper.Viper) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch v.GetString("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, usagef("--log-format must be text or json")
	}
}

// defaultDataDir is /var/lib/dfp2p/ROLE for root, else under the user's home.
func defaultDataDir(role string) string {
	if os.Geteuid() == 0 {
		return "/var/lib/dfp2p/" + role
	}
	if home, err := os.UserHomeDir(); err == nil {
		return home + "/.local/share/dfp2p/" + role
	}
	return "dfp2p-" + role
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
