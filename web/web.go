// Package web holds natter's browser UI and its TypeScript client, both
// compiled to plain ES modules that are committed and embedded into the
// binary, so the gateway serves them without Node or any file on disk.
//
// URL layout (it mirrors the source tree, so that the UI's relative
// imports resolve the same in the editor and in the browser):
//
//	/                 static/index.html, style.css, favicon.svg
//	/ui/              static/ui/: the UI, compiled from ui/*.ts
//	/client/dist/     client/dist/: the @natter/client package
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static client/dist
var files embed.FS

// CSP allows only natter's own scripts, styles and connections: the UI
// never needs inline code, eval or another origin.
const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the UI.
func Handler() http.Handler {
	fsrv := http.FileServerFS(tree{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", CSP)
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files have no modification time to revalidate with;
		// they are small, and an upgraded binary must not run old JS.
		h.Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

// tree maps the URL layout onto the embedded files.
type tree struct{}

func (tree) Open(name string) (fs.File, error) {
	if name == "client" || strings.HasPrefix(name, "client/") {
		return files.Open(name)
	}
	if name == "." {
		return files.Open("static")
	}
	return files.Open("static/" + name)
}
