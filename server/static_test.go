package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestStatic(t *testing.T) {
	page := "<!doctype html><title>Parley</title>" + strings.Repeat("<p>hello</p>", 100)
	wasm := bytes.Repeat([]byte("\x00asm"), 1000)
	st, err := loadStatic(fstest.MapFS{
		"index.html":     {Data: []byte(page)},
		"app.js":         {Data: []byte("console.log(1)")},
		"parley.wasm":    {Data: wasm},
		"parley.wasm.gz": {Data: gzipped(wasm)},
		".hidden":        {Data: []byte("secret")},
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, header ...string) *http.Response {
		r := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		st.ServeHTTP(w, r)
		return w.Result()
	}
	body := func(resp *http.Response) string {
		var r io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// / is index.html; compressed only for a client that accepts it.
	resp := get("/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || body(resp) != page || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	resp = get("/", "Accept-Encoding", "br, gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || body(resp) != page {
		t.Errorf("GET / with gzip: %v", resp.Header)
	}
	if resp := get("/", "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip sent to a client that refused it")
	}
	// An unchanged file costs a 304.
	etag := resp.Header.Get("ETag")
	if resp := get("/index.html", "If-None-Match", etag); etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with %q: %d", etag, resp.StatusCode)
	}
	// The wasm's precompressed copy is used, and not served by its own name.
	resp = get("/parley.wasm", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Content-Encoding") != "gzip" || body(resp) != string(wasm) {
		t.Errorf("GET /parley.wasm: %v", resp.Header)
	}
	for _, p := range []string{"/parley.wasm.gz", "/.hidden", "/nope.js", "/../static.go"} {
		if resp := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// A tiny file is not worth compressing.
	if resp := get("/app.js", "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "" || body(resp) != "console.log(1)" {
		t.Errorf("GET /app.js: %v", resp.Header)
	}
}
