package main

import (
	"os/exec"
	"strings"
	"testing"
)

// testDPoP runs the demo with -dpop as a newcomer would and calls it with the command it
// prints: the token is DPoP-bound, B and C accept it, and bearer tokens are refused.
func testDPoP(t *testing.T, bin string) {
	data := t.TempDir()
	e := startExample(t, bin, startOptions{data: data, args: []string{"-dpop"}})
	out := e.stdout.String()
	const prefix = "go run ./example call "
	i := strings.Index(out, prefix)
	if i < 0 || strings.Contains(out, `Authorization: Bearer`) {
		t.Fatalf("the welcome shows no DPoP call, or a bearer one:\n%s", out)
	}
	line := strings.ReplaceAll(out[i+len(prefix):], "\\\n", "")
	line, _, _ = strings.Cut(line, "\n")
	args := append([]string{"call", "-data", data}, strings.Fields(line)...)
	for _, target := range []string{"", "/stock"} { // B, then B calling C on the caller's behalf
		a := append([]string{}, args...)
		a[len(a)-1] += target
		got, err := exec.Command(bin, a...).CombinedOutput()
		if err != nil || !strings.Contains(string(got), "token_type DPoP") || !strings.Contains(string(got), "200 OK") {
			t.Fatalf("example %s: %v\n%s", strings.Join(a, " "), err, got)
		}
		if target == "/stock" && !strings.Contains(string(got), `"act":{"sub":"orders-api"}`) {
			t.Fatalf("C does not see B acting: %s", got)
		}
	}
	got, err := exec.Command(bin, append([]string{"call", "-bearer", "-data", data}, strings.Fields(line)...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(got), "invalid_dpop_proof") {
		t.Fatalf("a bearer token for the DPoP-only resource server: %v\n%s", err, got)
	}
}
