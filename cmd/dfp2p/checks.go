package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/tracker"
)

// settingCheck is one check a long-running command makes on its settings
// before anything starts. keys are the settings it reads: `config validate`
// reports a failure at the line of the first of them the file sets.
type settingCheck struct {
	keys  []string
	check func(v *viper.Viper) error
}

// startChecks are the checks `dfp2p daemon` and `dfp2p tracker` run at start
// (serverSetup) and `dfp2p config validate` runs on a file: one list, so a
// file that validates is a file the command starts with.
func startChecks(command string) []settingCheck {
	checks := []settingCheck{
		{[]string{"log-level", "log-format"}, func(v *viper.Viper) error { _, err := newLogger(v); return err }},
		{[]string{"listen"}, listenFlag},
		{[]string{"gc-high-watermark", "gc-low-watermark"}, func(v *viper.Viper) error { _, _, err := watermarks(v); return err }},
		{[]string{"region", "zone", "bootstrap"}, func(v *viper.Viper) error { _, err := dhtFlags(v); return err }},
		{[]string{"encrypt-key-file", "encrypt-cipher"}, func(v *viper.Viper) error { _, _, err := encryption(v); return err }},
		{[]string{"security"}, func(v *viper.Viper) error { _, err := securityFlag(v); return err }},
	}
	if command == "daemon" {
		checks = append(checks,
			settingCheck{[]string{"tracker"}, trackerFlag},
			settingCheck{[]string{"join"}, joinFlag},
			settingCheck{[]string{"proxy-registry"}, func(v *viper.Viper) error { _, err := proxyConfig(v); return err }},
		)
	}
	return checks
}

// checkSettings runs the start checks of command; the first failure is the
// error (a usage error: exit code 2).
func checkSettings(command string, v *viper.Viper) error {
	for _, c := range startChecks(command) {
		if err := c.check(v); err != nil {
			return err
		}
	}
	return nil
}

// listenFlag checks that every --listen value is a multiaddr.
func listenFlag(v *viper.Viper) error {
	for _, s := range v.GetStringSlice("listen") {
		if _, err := multiaddr.NewMultiaddr(s); err != nil {
			return usagef("--listen %q: %v", s, err)
		}
	}
	return nil
}

// trackerFlag checks the daemon's --tracker addresses as the daemon parses them.
func trackerFlag(v *viper.Viper) error {
	if _, err := tracker.ParseAddrs(v.GetStringSlice("tracker")); err != nil {
		return usagef("--tracker: %v", err)
	}
	return nil
}

// joinFlag parses --join (empty: no token).
func joinFlag(v *viper.Viper) error {
	if s := v.GetString("join"); s != "" {
		if _, err := crypto.ParseJoinToken(s); err != nil {
			return usagef("--join: %v", err)
		}
	}
	return nil
}

// freshFlags returns the flags of a new copy of cmd (found by its path from
// a new root), with the root's persistent flags merged in: values can be set
// on them without touching cmd's.
func freshFlags(cmd *cobra.Command) *pflag.FlagSet {
	path := strings.Fields(cmd.CommandPath())
	c, _, err := newRoot().Find(path[1:])
	if err != nil || c.CommandPath() != cmd.CommandPath() {
		panic("freshFlags: no command " + cmd.CommandPath())
	}
	_ = c.ParseFlags(nil) // merges the persistent flags, as running it does
	return c.Flags()
}

// configValue checks one value of a config file against the flag f it sets,
// by setting it on f (a fresh copy) with the parser the command line uses,
// and returns the value in the flag's canonical form (a string, or a list of
// strings for a list flag), which viper then reads exactly as a flag.
//
// val is what YAML decoded: a scalar, a list or a mapping. A list flag takes
// a list of single values, or one string split at white space (as viper
// splits it); null is the empty list. Other flags take a single value; null
// is allowed only for strings (the empty string).
func configValue(f *pflag.Flag, val any) (any, error) {
	sv, isList := f.Value.(pflag.SliceValue)
	if isList {
		var items []string
		switch x := val.(type) {
		case nil:
		case []any:
			for i, e := range x {
				s, ok := scalarString(e)
				if !ok {
					return nil, fmt.Errorf("list item %d is not a single value", i+1)
				}
				items = append(items, s)
			}
		case map[string]any:
			return nil, fmt.Errorf("want a list, got a mapping")
		default:
			s, ok := scalarString(x)
			if !ok {
				return nil, fmt.Errorf("want a list, got %T", x)
			}
			items = strings.Fields(s)
		}
		if err := sv.Replace(items); err != nil {
			return nil, fmt.Errorf("invalid %s: %v", typeName(f), err)
		}
		return sv.GetSlice(), nil
	}
	var s string
	switch x := val.(type) {
	case nil:
		if f.Value.Type() != "string" {
			return nil, fmt.Errorf("no value (want %s)", typeName(f))
		}
	case []any:
		return nil, fmt.Errorf("want a single value (%s), got a list", typeName(f))
	case map[string]any:
		return nil, fmt.Errorf("want a single value (%s), got a mapping", typeName(f))
	default:
		var ok bool
		if s, ok = scalarString(x); !ok {
			return nil, fmt.Errorf("want a single value (%s), got %T", typeName(f), x)
		}
	}
	if err := f.Value.Set(s); err != nil {
		return nil, fmt.Errorf("invalid %s %q", typeName(f), s)
	}
	return f.Value.String(), nil
}

// scalarString renders a decoded YAML scalar as the text a flag is given.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		return x.Format(time.RFC3339Nano), true
	}
	return "", false
}

// typeName is how a flag's type is named in messages and generated files.
func typeName(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "float64":
		return "number"
	case "bool":
		return "boolean"
	case "stringSlice":
		return "list of strings"
	default:
		return t
	}
}

// normalizeConfig checks every value of a parsed config file (keys already
// checked by parseConfigFile) against cmd's flags and replaces it by its
// canonical form: file values are parsed exactly as command-line values, and
// a bad one ("10 minutes" for a duration) is an error, not a silent zero.
func normalizeConfig(cmd *cobra.Command, raw map[string]any) error {
	fs := freshFlags(cmd)
	for _, k := range sortedNames(raw) {
		f := fs.Lookup(k)
		if f == nil {
			return fmt.Errorf("unknown key %q", k)
		}
		nv, err := configValue(f, raw[k])
		if err != nil {
			return fmt.Errorf("key %q: %v", k, err)
		}
		raw[k] = nv
	}
	return nil
}

func sortedNames(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkEnv checks every DFP2P_* variable that names one of cmd's flags with
// the same parser as a config-file value (configValue): viper would
// otherwise turn DFP2P_GC_INTERVAL=soon into a silent zero.
func checkEnv(cmd *cobra.Command) error {
	var err error
	freshFlags(cmd).VisitAll(func(f *pflag.Flag) {
		name := "DFP2P_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if s, ok := os.LookupEnv(name); ok && err == nil {
			if _, e := configValue(f, s); e != nil {
				err = fmt.Errorf("%s: %v", name, e)
			}
		}
	})
	return err
}
