package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// checkConfigTypes checks that every value in a parsed --config file, and
// every DFP2P_* variable that names a flag, has the flag's type. viper
// converts silently: without this, `gc-interval: banana` or a list where a
// string belongs would become the zero value and the process would run with
// a setting nobody asked for.
func checkConfigTypes(raw map[string]any, flags *pflag.FlagSet) error {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := flags.Lookup(k)
		if f == nil {
			continue // parseConfigFile refuses unknown keys
		}
		if err := checkValue(f.Value.Type(), raw[k]); err != nil {
			return fmt.Errorf("key %q: %v", k, err)
		}
	}
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		name := "DFP2P_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if s, ok := os.LookupEnv(name); ok {
			if e := checkString(f.Value.Type(), s); e != nil {
				err = fmt.Errorf("%s: %v", name, e)
			}
		}
	})
	return err
}

// checkValue checks one decoded YAML value against a pflag type name.
func checkValue(typ string, v any) error {
	switch typ {
	case "stringSlice", "stringArray":
		switch x := v.(type) {
		case []any:
			for i, e := range x {
				if !isScalar(e) {
					return fmt.Errorf("item %d: want a single value, got %s", i+1, yamlKind(e))
				}
			}
			return nil
		case nil:
			return nil
		}
		if !isScalar(v) {
			return fmt.Errorf("want a list of values, got %s", yamlKind(v))
		}
		return nil
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want true or false, got %s", yamlKind(v))
		}
		return nil
	}
	if !isScalar(v) {
		return fmt.Errorf("want a single value, got %s", yamlKind(v))
	}
	if v == nil {
		return nil
	}
	return checkString(typ, fmt.Sprint(v))
}

// checkString checks a value's text form (a YAML scalar or an environment
// variable) against a pflag type name.
func checkString(typ, s string) error {
	var err error
	switch typ {
	case "duration":
		if _, e := time.ParseDuration(s); e != nil {
			err = fmt.Errorf("want a duration such as 15m or 24h, got %q", s)
		}
	case "bool":
		if _, e := strconv.ParseBool(s); e != nil {
			err = fmt.Errorf("want true or false, got %q", s)
		}
	case "int":
		if _, e := strconv.Atoi(s); e != nil {
			err = fmt.Errorf("want a whole number, got %q", s)
		}
	case "float64":
		if _, e := strconv.ParseFloat(s, 64); e != nil {
			err = fmt.Errorf("want a number, got %q", s)
		}
	}
	return err
}

func isScalar(v any) bool {
	switch v.(type) {
	case []any, map[string]any, map[any]any:
		return false
	}
	return true
}

func yamlKind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}
