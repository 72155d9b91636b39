package natter_test

import (
	"os"
	"regexp"
	"testing"
)

// compose.yaml's Kafka is the version the test suite runs (scripts/services):
// what users deploy is what was tested.
func TestComposeRunsTheTestedKafka(t *testing.T) {
	services, err := os.ReadFile("scripts/services")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`KAFKA_VERSION=\$\{NATTER_KAFKA_VERSION:-([0-9.]+)\}`).FindSubmatch(services)
	if m == nil {
		t.Fatal("scripts/services: no default KAFKA_VERSION")
	}
	tested := string(m[1])
	for _, f := range []string{"compose.yaml", "compose.secure.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		images := regexp.MustCompile(`image:\s*apache/kafka:(\S+)`).FindAllSubmatch(data, -1)
		if len(images) == 0 {
			t.Errorf("%s: no apache/kafka image", f)
		}
		for _, img := range images {
			if string(img[1]) != tested {
				t.Errorf("%s runs apache/kafka:%s; the tests run Kafka %s", f, img[1], tested)
			}
		}
	}
}
