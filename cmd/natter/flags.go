// Flags with environment fallbacks: every flag --some-name can also be set
// with NATTER_SOME_NAME; a flag given on the command line wins.

package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// flags wraps a FlagSet whose flags all have an environment variable.
type flags struct {
	fs   *flag.FlagSet
	envs map[string]string // flag name → env var
	// aliases are extra env vars read for a flag (e.g. DATABASE_URL).
	aliases map[string][]string
	// set holds the flags given on the command line or by environment.
	set map[string]bool
}

func newFlags(name, usage string, out io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	f := &flags{fs: fs, envs: map[string]string{}, aliases: map[string][]string{}}
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\n\nFlags (each also read from its environment variable):\n", usage)
		fs.VisitAll(func(fl *flag.Flag) {
			env := f.envs[fl.Name]
			if a := f.aliases[fl.Name]; len(a) > 0 {
				env += ", " + strings.Join(a, ", ")
			}
			def := ""
			if fl.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", fl.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]%s\n      %s\n", fl.Name, env, def, fl.Usage)
		})
	}
	return f
}

// EnvName is the environment variable of flag name.
func EnvName(name string) string {
	return "NATTER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (f *flags) String(name, def, usage string, aliases ...string) *string {
	f.envs[name] = EnvName(name)
	f.aliases[name] = aliases
	return f.fs.String(name, def, usage)
}

func (f *flags) Int(name string, def int, usage string) *int {
	f.envs[name] = EnvName(name)
	return f.fs.Int(name, def, usage)
}

func (f *flags) Bool(name string, def bool, usage string) *bool {
	f.envs[name] = EnvName(name)
	return f.fs.Bool(name, def, usage)
}

func (f *flags) Duration(name string, def time.Duration, usage string) *time.Duration {
	f.envs[name] = EnvName(name)
	return f.fs.Duration(name, def, usage)
}

// parse reads args, then fills every flag not given from its environment
// variable. An unparsable environment value is an error naming it.
func (f *flags) parse(args []string, getenv func(string) string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	f.set = given
	var err error
	f.fs.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] || err != nil {
			return
		}
		for _, env := range append([]string{f.envs[fl.Name]}, f.aliases[fl.Name]...) {
			if v := getenv(env); v != "" {
				if e := fl.Value.Set(v); e != nil {
					err = fmt.Errorf("%s=%q: %v", env, v, e)
				}
				given[fl.Name] = true
				return
			}
		}
	})
	return err
}

// isSet reports whether flag name was given on the command line or by its
// environment variable (not left at its default).
func (f *flags) isSet(name string) bool { return f.set[name] }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
