package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/tracker"
)

// newClusterCmd groups the closed-cluster tools. A tracker does all of this
// itself on first start; these are for operators who run their own CA,
// re-print a join line, revoke a member or mint API tokens.
func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Closed-cluster tools: CA, certificates, join lines, revocation, API tokens",
	}
	cmd.AddCommand(clusterInitCmd(), clusterIssueCmd(), clusterTokenCmd(), clusterRevokeCmd(), clusterAPITokenCmd())
	return cmd
}

// caFlag adds --ca and returns a loader for it.
func caFlag(cmd *cobra.Command) func() (*crypto.CA, error) {
	cmd.Flags().String("ca", filepath.Join(defaultDataDir("tracker"), "cluster-ca.key"), "cluster CA key file")
	return func() (*crypto.CA, error) {
		path, _ := cmd.Flags().GetString("ca")
		ca, err := crypto.LoadCA(path)
		if err != nil {
			return nil, fmt.Errorf("cluster CA: %w", err)
		}
		return ca, nil
	}
}

func clusterInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a cluster CA in DIR (cluster-ca.key, 0600, and cluster-ca.pub)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ca, created, err := crypto.LoadOrCreateCA(args[0])
			if err != nil {
				return err
			}
			if !created {
				return usagef("%s already holds a cluster CA (%s)", args[0], crypto.CAFingerprint(ca.Public()))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", crypto.CAFingerprint(ca.Public()))
			return nil
		},
	}
	return cmd
}

func clusterIssueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issue --peer ID --role peer|seed|tracker",
		Short: "Issue a membership certificate (printed in its file form, for DIR/membership.cert)",
		Args:  cobra.NoArgs,
	}
	loadCA := caFlag(cmd)
	f := cmd.Flags()
	f.String("peer", "", "peer ID of the member (dfp2p keygen prints it)")
	f.String("role", string(crypto.RolePeer), "peer, seed or tracker")
	f.Duration("ttl", tracker.DefaultCertTTL, "lifetime")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ps, _ := f.GetString("peer")
		p, err := peer.Decode(ps)
		if err != nil {
			return usagef("--peer %q: %v", ps, err)
		}
		rs, _ := f.GetString("role")
		role, err := crypto.ParseRole(rs)
		if err != nil {
			return usageError{err}
		}
		ttl, _ := f.GetDuration("ttl")
		ca, err := loadCA()
		if err != nil {
			return err
		}
		c, err := ca.Issue(p, role, ttl, time.Now())
		if err != nil {
			return err
		}
		b, err := c.Encode()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
		return err
	}
	return cmd
}

func clusterTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a tracker's join line (from its data dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, _ := cmd.Flags().GetString("data-dir")
			b, err := os.ReadFile(filepath.Join(dir, tracker.JoinTokenFile))
			if err != nil {
				return fmt.Errorf("no join token in %s (start the tracker once, without --open): %w", dir, err)
			}
			tok, err := crypto.ParseJoinToken(string(b))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "dfp2p daemon --join %s\n", tok)
			return err
		},
	}
	cmd.Flags().String("data-dir", defaultDataDir("tracker"), "the tracker's data dir")
	return cmd
}

func clusterRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke PEER_ID",
		Short: "Revoke a member: the tracker using --data-dir refuses it within a second, other members within a minute",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("data-dir", defaultDataDir("tracker"), "the tracker's data dir (holds the revocation list)")
	loadCA := caFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := peer.Decode(args[0])
		if err != nil {
			return usagef("peer ID %q: %v", args[0], err)
		}
		dir, _ := cmd.Flags().GetString("data-dir")
		if !cmd.Flags().Changed("ca") {
			_ = cmd.Flags().Set("ca", filepath.Join(dir, "cluster-ca.key"))
		}
		ca, err := loadCA()
		if err != nil {
			return err
		}
		rl, err := tracker.Revoke(dir, ca, p)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (%d peers on the list)\n", p, len(rl.Peers))
		return err
	}
	return cmd
}

func clusterAPITokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api-token --scope read,preheat,admin",
		Short: "Mint a bearer token for the HTTP APIs, signed by the cluster CA",
		Args:  cobra.NoArgs,
	}
	loadCA := caFlag(cmd)
	cmd.Flags().String("scope", string(crypto.ScopeRead), "comma-separated scopes: read, preheat, admin")
	cmd.Flags().Duration("ttl", 24*time.Hour, "lifetime")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, _ := cmd.Flags().GetString("scope")
		scopes, err := crypto.ParseScopes(s)
		if err != nil {
			return usageError{err}
		}
		ttl, _ := cmd.Flags().GetDuration("ttl")
		ca, err := loadCA()
		if err != nil {
			return err
		}
		tok, err := ca.IssueToken(scopes, ttl, time.Now())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
		return err
	}
	return cmd
}
