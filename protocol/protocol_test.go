package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/natter-chat/natter/protocol"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		op   protocol.Op
		code protocol.Code // "" = no error
	}{
		{`{"op":"ping"}`, "ping", ""},
		{`{"op":"refresh","token":"t"}`, "refresh", ""},
		{`{"op":"send","room":"r","cid":"c","body":"b","extra":1}`, "send", ""},
		{` {"op":"join","room":"r","since":"x"} `, "join", ""},
		{`{"op":"fly"}`, "fly", protocol.CodeUnknownOp},
		{`{}`, "", protocol.CodeUnknownOp},
		{`{"op":1}`, "", protocol.CodeBadFrame},
		{`{"op":"ping"`, "", protocol.CodeBadFrame},
		{`[1,2]`, "", protocol.CodeBadFrame},
		{`"op"`, "", protocol.CodeBadFrame},
		{``, "", protocol.CodeBadFrame},
		{`null`, "", protocol.CodeBadFrame},
		{"{\"op\":\"send\",\"body\":\"\xff\"}", "", protocol.CodeBadFrame},
		{`{"op":"ping","ref":"` + strings.Repeat("r", 65) + `"}`, "ping", protocol.CodeBadFrame},
		{`{"op":"history","limit":"ten"}`, "", protocol.CodeBadFrame},
		{strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000), "", protocol.CodeBadFrame},
	} {
		f, err := protocol.Decode([]byte(tc.in))
		if tc.code == "" {
			if err != nil || f.Op != tc.op {
				t.Errorf("Decode(%.40q) = %+v, %v", tc.in, f, err)
			}
			continue
		}
		var de *protocol.DecodeError
		if !errors.As(err, &de) || de.Code != tc.code {
			t.Errorf("Decode(%.40q) error = %v, want code %s", tc.in, err, tc.code)
		}
	}
}

func TestDecodeErrorDoesNotEchoInput(t *testing.T) {
	_, err := protocol.Decode([]byte(`{"op":"send","body":"<script>secret</script>`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v echoes input", err)
	}
}

func TestEncodeHasNoRawNewline(t *testing.T) {
	b := protocol.Encode(protocol.Msg{Op: protocol.OpMsg, Body: "line1\nline2\r\n\u2028"})
	if strings.ContainsAny(string(b), "\n\r") {
		t.Fatalf("encoded frame has a raw newline: %q", b)
	}
	var m protocol.Msg
	if err := json.Unmarshal(b, &m); err != nil || m.Body != "line1\nline2\r\n\u2028" {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}

func TestDecodeAllocations(t *testing.T) {
	in := []byte(`{"op":"send","room":"lobby","cid":"c-1","body":"hello there"}`)
	n := testing.AllocsPerRun(100, func() { _, _ = protocol.Decode(in) })
	// encoding/json allocates per string field; guard against growth.
	if n > 12 {
		t.Errorf("Decode allocates %v times per frame, want ≤ 12", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"op":"ping"}`, `{"op":"send","room":"r","cid":"c","body":"b"}`, `{`, `[]`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := protocol.Decode(data)
		if err == nil {
			switch fr.Op {
			case protocol.OpConnect, protocol.OpJoin, protocol.OpLeave, protocol.OpSend, protocol.OpHistory, protocol.OpTyping, protocol.OpPing:
			default:
				t.Fatalf("accepted op %q", fr.Op)
			}
			return
		}
		var de *protocol.DecodeError
		if !errors.As(err, &de) || de.Code == "" {
			t.Fatalf("error without a code: %v", err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	in := []byte(`{"op":"send","room":"lobby","cid":"c-1","body":"hello there, this is a typical chat message"}`)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = protocol.Decode(in)
	}
}

func BenchmarkEncodeMsg(b *testing.B) {
	m := protocol.Msg{Op: protocol.OpMsg, Room: "lobby", ID: "01M8JGN9YK9T4JHN4RZGFCRC7E", User: "alice", Body: "hello there, this is a typical chat message", TS: 1795917785043, Region: "eu"}
	b.ReportAllocs()
	for b.Loop() {
		_ = protocol.Encode(m)
	}
}

func TestMsgCarriesCIDOnlyWhenSet(t *testing.T) {
	with := string(protocol.Encode(protocol.Msg{Op: protocol.OpMsg, ID: "i", CID: "c-1"}))
	if !strings.Contains(with, `"cid":"c-1"`) {
		t.Errorf("msg with cid encodes as %s", with)
	}
	without := string(protocol.Encode(protocol.Msg{Op: protocol.OpMsg, ID: "i"}))
	if strings.Contains(without, "cid") {
		t.Errorf("msg without cid encodes as %s", without)
	}
}
