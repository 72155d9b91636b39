// Flags of a process's command line, kept by name so that a caller
// changes one (a link through a proxy, a shorter interval) without
// knowing where it is.

package topology

import "strings"

// Flag is one flag of a command line.
type Flag struct {
	Name  string // without the leading dashes
	Value string // "true" for a boolean flag that is on
}

// Flags are the flags of a command line in order, each name once.
type Flags []Flag

// Pairs makes Flags of alternating names and values, as a command line
// would have them: Pairs("--kafka-brokers", "k:9092", "--kafka-topic",
// "chat"). The dashes are optional; a later name replaces an earlier
// one's value. Like strings.NewReplacer it panics on an odd number of
// arguments, which is a mistake in the calling code.
func Pairs(nameValue ...string) Flags {
	if len(nameValue)%2 == 1 {
		panic("topology.Pairs: odd argument count")
	}
	var fs Flags
	for i := 0; i < len(nameValue); i += 2 {
		fs.Set(nameValue[i], nameValue[i+1])
	}
	return fs
}

// Set gives flag name the value, in its place if it is there already,
// else at the end.
func (fs *Flags) Set(name, value string) {
	name = strings.TrimLeft(name, "-")
	for i := range *fs {
		if (*fs)[i].Name == name {
			(*fs)[i].Value = value
			return
		}
	}
	*fs = append(*fs, Flag{Name: name, Value: value})
}

// Add sets each of more in turn.
func (fs *Flags) Add(more Flags) {
	for _, f := range more {
		fs.Set(f.Name, f.Value)
	}
}

// Delete removes flag name.
func (fs *Flags) Delete(name string) {
	name = strings.TrimLeft(name, "-")
	out := (*fs)[:0]
	for _, f := range *fs {
		if f.Name != name {
			out = append(out, f)
		}
	}
	*fs = out
}

// Lookup returns flag name's value and whether it is there.
func (fs Flags) Lookup(name string) (string, bool) {
	name = strings.TrimLeft(name, "-")
	for _, f := range fs {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Get returns flag name's value, empty when it is not there.
func (fs Flags) Get(name string) string {
	v, _ := fs.Lookup(name)
	return v
}

// Args renders the flags as arguments, one "--name=value" each, which
// reads the same to Go's flag package for strings, numbers, durations
// and booleans, and keeps a value that starts with a dash a value.
func (fs Flags) Args() []string {
	args := make([]string, 0, len(fs))
	for _, f := range fs {
		args = append(args, "--"+f.Name+"="+f.Value)
	}
	return args
}
