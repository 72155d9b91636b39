package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/natter-chat/natter/web"
)

func get(t *testing.T, srv *httptest.Server, p string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestServesPageWithStrictCSP(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script type="module" src="ui/app.js">`) {
		t.Fatalf("GET / = %s, body %.200q", resp.Status, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	// No inline script or style in the page: the CSP would block them.
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|style="|\son[a-z]+=`).MatchString(body) {
		t.Errorf("index.html has inline script or style")
	}
}

// importRE finds the module specifiers of static imports and exports.
var importRE = regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"]*?from\s+"([^"]+)"`)

// TestModulesResolve follows every import from the page's entry module,
// as a browser would, and checks that each is served as JavaScript: the
// committed build is complete and its paths match the URL layout.
func TestModulesResolve(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	seen := map[string]bool{}
	queue := []string{"/ui/app.js"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		resp, body := get(t, srv, p)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %s", p, resp.Status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("GET %s: Content-Type %q, browsers refuse modules without a JavaScript type", p, ct)
		}
		for _, m := range importRE.FindAllStringSubmatch(body, -1) {
			spec := m[1]
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: browsers need relative paths", p, spec)
				continue
			}
			queue = append(queue, path.Join(path.Dir(p), spec))
		}
	}
	for _, want := range []string{"/ui/messages.js", "/client/dist/index.js", "/client/dist/client.js"} {
		if !seen[want] {
			t.Errorf("%s is not reached from /ui/app.js (reached %v)", want, seen)
		}
	}
}

func TestServesStylesAndIcon(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for p, ct := range map[string]string{"/style.css": "text/css", "/favicon.svg": "image/svg+xml"} {
		resp, _ := get(t, srv, p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("GET %s = %s %q", p, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get(t, srv, "/client/src/client.ts"); resp.StatusCode != 404 {
		t.Errorf("TypeScript sources are served: %s", resp.Status)
	}
}
