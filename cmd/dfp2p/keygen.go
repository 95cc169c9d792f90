package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/dfp2p/dfp2p/node"
)

func newKeygenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keygen [--out FILE] [--force]",
		Short: "Create an ed25519 libp2p identity key and print its peer ID",
		Long: "keygen writes a new ed25519 identity key (mode 0600) in the format the daemon and the\n" +
			"tracker load from DATA-DIR/" + node.IdentityFile + ", and prints its peer ID on stdout. Write it into\n" +
			"a data directory before the first start to know a node's peer ID in advance (for example to\n" +
			"list a tracker's /p2p/ address): dfp2p keygen --out /var/lib/dfp2p/tracker/" + node.IdentityFile + "\n" +
			"An existing file is never replaced unless --force is given; replacing a key changes the\n" +
			"node's peer ID.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, _ := cmd.Flags().GetString("out")
			force, _ := cmd.Flags().GetBool("force")
			if out == "" {
				return usagef("keygen: --out must name a file")
			}
			id, err := node.GenerateIdentity(out, force)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("keygen: %s already exists; pass --force to replace it (the peer ID changes)", out)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), id)
			return err
		},
	}
	cmd.Flags().String("out", node.IdentityFile, "key file to write")
	cmd.Flags().Bool("force", false, "replace an existing key file (the peer ID changes)")
	// Bad flags are usage errors (exit 2) even before the command is added
	// to the root, which sets the same function.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return cmd
}
