package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// static serves the web client's files from memory: each is read once at
// Open, given an ETag (a hash of its content) and, when compressing pays,
// a gzip copy. The files have fixed names, so browsers must revalidate
// (Cache-Control: no-cache); an unchanged file costs a 304.
type static struct {
	files map[string]*staticFile // by path without the leading slash
}

type staticFile struct {
	data, gz []byte
	ctype    string
	etag     string
}

// loadStatic reads every regular file of fsys.
func loadStatic(fsys fs.FS) (*static, error) {
	st := &static{files: map[string]*staticFile{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := &staticFile{data: data, ctype: mime.TypeByExtension(path.Ext(name)), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if f.ctype == "" {
			f.ctype = http.DetectContentType(data)
		}
		st.files[name] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web client files: %w", err)
	}
	// NAME.gz beside NAME is its compressed form (make web writes one for
	// parley.wasm, which takes a second to compress); small files are
	// compressed here.
	for name, f := range st.files {
		if orig := st.files[strings.TrimSuffix(name, ".gz")]; strings.HasSuffix(name, ".gz") && orig != nil {
			orig.gz = f.data
			delete(st.files, name)
		}
	}
	for _, f := range st.files {
		if f.gz != nil || len(f.data) > maxCompressAtLoad {
			continue
		}
		if gz := gzipped(f.data); len(gz) < len(f.data)*9/10 {
			f.gz = gz
		}
	}
	return st, nil
}

// maxCompressAtLoad is the largest file compressed when the server starts.
const maxCompressAtLoad = 1 << 20

func gzipped(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// has reports whether name is one of the files.
func (st *static) has(name string) bool { return st.files[name] != nil }

func (st *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	f := st.files[name]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if f.gz != nil {
		h.Set("Vary", "Accept-Encoding")
	}
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.data
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}
