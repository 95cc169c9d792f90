package main

import (
	"github.com/spf13/cobra"

	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/store"
)

// registerCompletions adds value completions for the flags that take one of
// a fixed set of choices. Shell completion itself is cobra's default
// `dfp2p completion bash|zsh|fish|powershell` command.
func registerCompletions(root *cobra.Command) {
	fixed := func(choices ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp)
	}
	_ = root.RegisterFlagCompletionFunc("log-level", fixed("debug", "info", "warn", "error"))
	_ = root.RegisterFlagCompletionFunc("log-format", fixed("text", "json"))
	_ = root.RegisterFlagCompletionFunc("config", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	})
	for _, name := range configCommands {
		c, _, err := root.Find([]string{name})
		if err != nil || c == root {
			continue
		}
		_ = c.RegisterFlagCompletionFunc("security", fixed(node.SecurityChoices...))
		_ = c.RegisterFlagCompletionFunc("encrypt-cipher", fixed(store.Ciphers...))
		_ = c.RegisterFlagCompletionFunc("data-dir", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		})
	}
	if c, _, err := root.Find([]string{"config", "validate"}); err == nil && c.Name() == "validate" {
		_ = c.RegisterFlagCompletionFunc("for", fixed(configCommands...))
	}
}
