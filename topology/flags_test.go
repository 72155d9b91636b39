package topology

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFlagsSetReplacesInPlaceAndAddsAtTheEnd(t *testing.T) {
	fs := Pairs("--a", "1", "b", "2", "--c", "3")
	fs.Set("--b", "two")
	fs.Set("d", "4")
	if got := fs.Args(); !slices.Equal(got, []string{"--a=1", "--b=two", "--c=3", "--d=4"}) {
		t.Errorf("Args %q", got)
	}
	fs.Delete("a")
	fs.Add(Pairs("c", "three", "e", ""))
	if got := fs.Args(); !slices.Equal(got, []string{"--b=two", "--c=three", "--d=4", "--e="}) {
		t.Errorf("after Delete and Add: %q", got)
	}
	if v, ok := fs.Lookup("e"); !ok || v != "" {
		t.Errorf("Lookup of a flag set empty: %q, %v", v, ok)
	}
	if v, ok := fs.Lookup("a"); ok {
		t.Errorf("Lookup of a deleted flag: %q", v)
	}
	if fs.Get("--c") != "three" {
		t.Errorf("Get --c = %q", fs.Get("--c"))
	}
}

func TestPairsLaterNameWins(t *testing.T) {
	if got := Pairs("--x", "1", "--x", "2").Args(); !slices.Equal(got, []string{"--x=2"}) {
		t.Errorf("Args %q", got)
	}
}

func TestPairsPanicsOnAnOddCount(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Pairs with a name and no value did not panic")
		}
	}()
	odd := strings.Fields("--lonely")
	Pairs(odd...)
}

// TestArgsReadTheSameToTheFlagPackage: what Args renders is what natter
// parses, for every kind of flag it has, and a value starting with a
// dash stays a value.
func TestArgsReadTheSameToTheFlagPackage(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	open := fs.Bool("open", false, "")
	n := fs.Int("rate-per-conn", 5, "")
	d := fs.Duration("presence-interval", time.Second, "")
	s := fs.String("nats-routes", "x", "")
	neg := fs.String("body", "", "")
	args := Pairs("--open", "true", "--rate-per-conn", "0", "--presence-interval", "250ms", "--nats-routes", "", "--body", "-v").Args()
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if !*open || *n != 0 || *d != 250*time.Millisecond || *s != "" || *neg != "-v" || fs.NArg() != 0 {
		t.Errorf("parsed %q as open=%v rate=%d interval=%v routes=%q body=%q rest=%q", args, *open, *n, *d, *s, *neg, fs.Args())
	}
}

// TestLineWriterPrefixesWholeLines: lines split across writes come out
// whole, one Write each, prefixed; a last line without a newline comes
// out on flush.
func TestLineWriterPrefixesWholeLines(t *testing.T) {
	var out writes
	lw := &lineWriter{w: &out, prefix: "gw | "}
	for _, chunk := range []string{"hel", "lo\nwor", "ld\n\nla", "st"} {
		if n, err := lw.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	lw.flush()
	want := []string{"gw | hello\n", "gw | world\n", "gw | \n", "gw | last\n"}
	if !slices.Equal(out, want) {
		t.Errorf("writes %q, want %q", out, want)
	}
}

func TestLineWriterCutsAnEndlessLine(t *testing.T) {
	var out writes
	lw := &lineWriter{w: &out, prefix: "p | "}
	_, _ = lw.Write(bytes.Repeat([]byte("x"), maxLine+10))
	if len(out) != 1 || len(out[0]) != len("p | ")+maxLine+1 {
		t.Fatalf("%d writes, first %d bytes; want one line cut at %d bytes", len(out), len(strings.Join(out, "")), maxLine)
	}
	lw.flush()
	if len(out) != 2 || out[1] != "p | xxxxxxxxxx\n" {
		t.Errorf("the rest came out as %q", out[1:])
	}
}

// writes records each Write.
type writes []string

func (w *writes) Write(b []byte) (int, error) {
	*w = append(*w, string(b))
	return len(b), nil
}
