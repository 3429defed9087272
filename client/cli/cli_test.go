package cli

import (
	"bytes"
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, out, _ := run(t, "", args...)
		if code != 0 || !strings.Contains(out, "safety-number") || !strings.Contains(out, "register") {
			t.Errorf("%v: code %d, output:\n%s", args, code, out)
		}
	}
	for _, c := range commands {
		code, out, _ := run(t, "", "help", c.name)
		if code != 0 || !strings.Contains(out, "usage: parley "+c.name) || !strings.Contains(out, "-home") {
			t.Errorf("help %s: code %d, output:\n%s", c.name, code, out)
		}
		code, out2, _ := run(t, "", c.name, "--help")
		if code != 0 || out2 != out {
			t.Errorf("%s --help differs from help %s", c.name, c.name)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Commands:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--home", home, "send", "bob"}, "want USER and TEXT"},
		{[]string{"--home", home, "recv", "--wait", "soon"}, "invalid value"},
		{[]string{"--home", home, "recv", "--bogus"}, "not defined"},
		{[]string{"--home", home, "register"}, "want one NAME"},
	} {
		code, _, errOut := run(t, "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: code %d, stderr %q; want code 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestNotRegistered(t *testing.T) {
	home := filepath.Join(t.TempDir(), "nobody")
	for _, args := range [][]string{{"whoami"}, {"send", "bob", "hi"}, {"recv"}, {"chat", "bob"}, {"safety-number", "bob"}} {
		code, _, errOut := run(t, "", append([]string{"--home", home}, args...)...)
		if code != exitError || !strings.Contains(errOut, "no account in "+home) {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
}

func TestBadInput(t *testing.T) {
	home := t.TempDir()
	code, _, errOut := run(t, "", "--home", home, "register", "--server", "http://127.0.0.1:1", "x")
	if code != exitError || !strings.Contains(errOut, "3 to 32 characters") {
		t.Errorf("short name: code %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "", "--home", home, "register", "--server", "ftp://example", "alice")
	if code != exitError || !strings.Contains(errOut, "want http:// or https://") {
		t.Errorf("bad server: code %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "", "--home", home, "register", "--server", "http://127.0.0.1:1", "alice")
	if code != exitError || !strings.Contains(errOut, "cannot reach the server") {
		t.Errorf("no server: code %d, %q", code, errOut)
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, true},
		{[]string{"--json", "a"}, []string{"a"}, true},
		{[]string{"a", "--", "--json", "-x"}, []string{"a", "--json", "-x"}, false},
		{nil, nil, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		j := fs.Bool("json", false, "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil || *j != tc.json || !cmp.Equal(pos, tc.pos) {
			t.Errorf("%q: %q, json %v, %v", tc.args, pos, *j, err)
		}
	}
}

func TestGroupDigits(t *testing.T) {
	d := strings.Repeat("0123456789", 6)
	want := "    01234 56789 01234 56789\n    01234 56789 01234 56789\n    01234 56789 01234 56789"
	if got := groupDigits(d); got != want {
		t.Errorf("groupDigits:\n%s\nwant:\n%s", got, want)
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                "plain",
		"two\nlines":           "two\n  lines",
		"\x1b[2Jclear":         "\uFFFD[2Jclear",
		"bell\a and \u009b c1": "bell\uFFFD and \uFFFD c1",
		"tab\there":            "tab\there",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteQR(t *testing.T) {
	var b bytes.Buffer
	if err := writeQR(&b, "05 hello scannable \x00\xff bytes", false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	width := len([]rune(lines[0]))
	if width < 21+4 {
		t.Fatalf("QR code only %d wide", width)
	}
	if len(lines) != (width+1)/2 {
		t.Errorf("%d lines for width %d", len(lines), width)
	}
	for _, l := range lines {
		if len([]rune(l)) != width {
			t.Fatalf("ragged QR code:\n%s", b.String())
		}
	}
	if strings.Trim(lines[0], "█") != "" { // the quiet zone is light
		t.Errorf("first line is not quiet: %q", lines[0])
	}
}

func TestHomeFromEnvironment(t *testing.T) {
	home := filepath.Join(t.TempDir(), "from-env")
	t.Setenv("PARLEY_HOME", home)
	code, _, errOut := run(t, "", "whoami")
	if code != exitError || !strings.Contains(errOut, "no account in "+home) {
		t.Errorf("whoami with PARLEY_HOME: code %d, %q", code, errOut)
	}
	flagHome := filepath.Join(t.TempDir(), "from-flag")
	code, _, errOut = run(t, "", "whoami", "--home", flagHome) // the flag wins, after the command too
	if code != exitError || !strings.Contains(errOut, "no account in "+flagHome) {
		t.Errorf("whoami --home: code %d, %q", code, errOut)
	}
}
