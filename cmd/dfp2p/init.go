package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dfp2p/dfp2p/proxy/setup"
)

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init containerd|docker|crio",
		Short: "Point a container runtime at this host's dfp2p registry mirror (backup, idempotent, --undo)",
		Long: "init writes a container runtime's registry-mirror configuration so that image pulls go\n" +
			"through the local dfp2p daemon's mirror (--proxy) and fall back to the registry when it is down,\n" +
			"and checks the runtime's own configuration for what would make it ignore that. It never\n" +
			"restarts anything: it prints what to restart.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("init: unknown runtime %q (want containerd, docker or crio)", args[0])
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			return usagef("init needs a runtime: dfp2p init containerd|docker|crio")
		},
	}
	cmd.AddCommand(newInitContainerdCmd(), newInitDockerCmd(), newInitCRIOCmd())
	return cmd
}

func addInitFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("proxy", setup.DefaultProxy, "the dfp2p daemon's registry mirror, URL or HOST:PORT (its --proxy)")
	f.Bool("undo", false, "restore the backups and remove the files dfp2p wrote")
	f.Bool("dry-run", false, "show what would change; write nothing")
	f.Bool("strict", false, "preflight warnings are an error (exit 1) and nothing is written")
}

func newInitContainerdCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "containerd",
		Short: "Write certs.d/<registry>/hosts.toml and check containerd's config.toml",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := setup.Containerd(setup.ContainerdOptions{
				ConfigPath:       v.GetString("config-path"),
				Registries:       v.GetStringSlice("registry"),
				Proxy:            v.GetString("proxy"),
				ContainerdConfig: v.GetString("containerd-config"),
				Undo:             v.GetBool("undo"),
				DryRun:           v.GetBool("dry-run"),
				Strict:           v.GetBool("strict"),
			})
			return finishInit(cmd, rep, err)
		},
	}
	f := cmd.Flags()
	f.String("config-path", setup.DefaultContainerdConfigPath, "containerd's registry hosts directory (its CRI registry config_path)")
	f.StringSlice("registry", nil, "registry to mirror, HOST[:PORT] (repeatable; default _default: every registry without its own directory)")
	f.String("containerd-config", setup.DefaultContainerdConfig, "containerd config.toml to check; empty skips the check")
	addInitFlags(cmd)
	return cmd
}

func newInitDockerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Add the mirror to daemon.json's registry-mirrors; show or write the systemd proxy drop-in",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := setup.Docker(setup.DockerOptions{
				DaemonJSON:    v.GetString("daemon-json"),
				Proxy:         v.GetString("proxy"),
				SystemdDropin: v.GetString("systemd-dropin"),
				Undo:          v.GetBool("undo"),
				DryRun:        v.GetBool("dry-run"),
				Strict:        v.GetBool("strict"),
			})
			return finishInit(cmd, rep, err)
		},
	}
	f := cmd.Flags()
	f.String("daemon-json", setup.DefaultDaemonJSON, "dockerd's configuration file")
	f.String("systemd-dropin", "", "write "+setup.DockerDropinName+" (HTTP_PROXY/HTTPS_PROXY for dockerd) into this directory, e.g. "+setup.DefaultDockerDropinDir)
	addInitFlags(cmd)
	return cmd
}

func newInitCRIOCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "crio",
		Aliases: []string{"cri-o"},
		Short:   "Write a containers-registries.conf.d drop-in with the mirror in front of each registry",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := setup.CRIO(setup.CRIOOptions{
				Dropin:     v.GetString("registries-conf"),
				MainConf:   v.GetString("main-registries-conf"),
				Registries: v.GetStringSlice("registry"),
				Proxy:      v.GetString("proxy"),
				Undo:       v.GetBool("undo"),
				DryRun:     v.GetBool("dry-run"),
				Strict:     v.GetBool("strict"),
			})
			return finishInit(cmd, rep, err)
		},
	}
	f := cmd.Flags()
	f.String("registries-conf", setup.DefaultCRIODropin, "the drop-in to write (its name must end in .conf)")
	f.String("main-registries-conf", setup.DefaultRegistriesConf, "main registries.conf, checked for entries the drop-in overrides; empty skips the check")
	f.StringSlice("registry", nil, "registry to mirror, HOST[:PORT] (repeatable; default docker.io)")
	addInitFlags(cmd)
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %q)", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}

// finishInit prints the report — changes and snippets on stdout, problems and
// notes on stderr, the restart hint last on stdout — and maps errors to exit
// codes: a bad option is a usage error (2), anything else 1.
func finishInit(cmd *cobra.Command, rep *setup.Report, err error) error {
	var oe *setup.OptionError
	if errors.As(err, &oe) {
		return usageError{err}
	}
	if rep != nil {
		printReport(cmd.OutOrStdout(), cmd.ErrOrStderr(), rep)
	}
	return err
}

func printReport(out, errOut io.Writer, rep *setup.Report) {
	for _, c := range rep.Changes {
		action := string(c.Action)
		if rep.DryRun && c.Action != setup.Unchanged && c.Action != setup.Skipped {
			action = "would be " + action
		}
		line := action + " " + c.Path
		if c.Backup != "" {
			switch c.Action {
			case setup.Restored:
				line += " (from " + c.Backup + ")"
			default:
				line += " (backup: " + c.Backup + ")"
			}
		}
		if c.Note != "" {
			line += ": " + c.Note
		}
		fmt.Fprintln(out, line)
		if rep.DryRun && len(c.Content) > 0 {
			fmt.Fprint(out, indent(string(c.Content)))
		}
	}
	for _, s := range rep.Snippets {
		fmt.Fprintln(out, s.Title+":")
		fmt.Fprint(out, indent(s.Content))
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(errOut, "%s: %s\n", p.Severity, p.String())
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(errOut, "note: "+n)
	}
	if rep.Restart != "" {
		fmt.Fprintln(out, rep.Restart)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}
