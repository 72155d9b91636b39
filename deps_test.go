package natter_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRolesDoNotImportEachOther lists each role's dependencies with the
// go tool: no role imports another, and the gateway, which runs at the
// edge, links no Kafka or Redis client.
func TestRolesDoNotImportEachOther(t *testing.T) {
	const mod = "github.com/natter-chat/natter/"
	roles := []string{"gateway", "bridge", "federation", "persister"}
	for _, role := range roles {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+role).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v\n%s", role, err, out)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			for _, other := range roles {
				if other != role && dep == mod+other {
					t.Errorf("%s imports %s", role, other)
				}
			}
			if role == "gateway" && (strings.HasPrefix(dep, "github.com/IBM/sarama") || strings.HasPrefix(dep, "github.com/redis/go-redis")) {
				t.Errorf("gateway depends on %s", dep)
			}
		}
		if len(deps) < 10 {
			t.Fatalf("go list -deps ./%s listed %d packages; is the output parsed right?", role, len(deps))
		}
	}
}
