package install

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// applyDiff applies a unified diff to a, checking every context and
// deleted line against a, and returns the result.
func applyDiff(t *testing.T, a, diff string) string {
	t.Helper()
	src := splitLines(a)
	var out []string
	pos := 0 // next line of src to copy
	lines := splitLines(diff)
	if len(lines) < 2 {
		t.Fatalf("diff has no header:\n%s", diff)
	}
	for i := 2; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "@@ ") {
			t.Fatalf("expected a hunk header, got %q", l)
		}
		var as, al, bs, bl int
		if _, err := fmt.Sscanf(l, "@@ -%d,%d +%d,%d @@", &as, &al, &bs, &bl); err != nil {
			t.Fatalf("hunk header %q: %v", l, err)
		}
		start := as - 1
		if al == 0 {
			start = as
		}
		out = append(out, src[pos:start]...)
		pos = start
		for i+1 < len(lines) && !strings.HasPrefix(lines[i+1], "@@ ") {
			i++
			kind, text := lines[i][0], lines[i][1:]
			if i+1 < len(lines) && lines[i+1] == "\\ No newline at end of file\n" {
				text = strings.TrimSuffix(text, "\n")
				i++
			}
			switch kind {
			case ' ', '-':
				if pos >= len(src) || src[pos] != text {
					t.Fatalf("diff line %q does not match source line %d %q", text, pos+1, at(src, pos))
				}
				if kind == ' ' {
					out = append(out, text)
				}
				pos++
			case '+':
				out = append(out, text)
			default:
				t.Fatalf("diff line %q has no ' ', '-' or '+'", lines[i])
			}
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, "")
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<EOF>"
}

func TestUnifiedDiffApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a\n", "b\n", "c\n", "[x]\n", "k = 1\n", "\n"}
	gen := func() string {
		var b strings.Builder
		for range r.IntN(30) {
			b.WriteString(words[r.IntN(len(words))])
		}
		s := b.String()
		if s != "" && r.IntN(4) == 0 {
			s = strings.TrimSuffix(s, "\n")
		}
		return s
	}
	for i := range 2000 {
		a, b := gen(), gen()
		d := UnifiedDiff(a, b, "a", "b")
		if a == b {
			if d != "" {
				t.Fatalf("case %d: diff of equal texts: %q", i, d)
			}
			continue
		}
		if got := applyDiff(t, a, d); got != b {
			t.Fatalf("case %d: applying\n%s\nto %q gave %q, want %q", i, d, a, got, b)
		}
	}
}

// TestUnifiedDiffMatchesDiff compares an install's dry-run diff with GNU
// diff's, where one change leaves no room for another alignment.
func TestUnifiedDiffMatchesDiff(t *testing.T) {
	diff, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("skipped: GNU diff is not installed")
	}
	p, err := Install([]byte(debianV2), true, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, p.Before, 0o644)
	os.WriteFile(b, p.After, 0o644)
	out, _ := exec.Command(diff, "-u", "--label", "a", "--label", "b", a, b).Output()
	if got := UnifiedDiff(string(p.Before), string(p.After), "a", "b"); got != string(out) {
		t.Errorf("UnifiedDiff:\n%s\ndiff -u:\n%s", got, out)
	}
}
