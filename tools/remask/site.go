package main

// The static files of the built demo site, for `remask serve`.

import (
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// siteHandler serves the folder dir like http.FileServer, except that a
// GET of FILE answers with FILE.gz (Content-Encoding: gzip, FILE's type)
// when that exists and the client accepts gzip: `./build.sh build` writes
// remask.wasm.gz next to the 13 MB engine, which is about a quarter of it.
//
// A folder is served only through its index.html: never as a listing of
// its files (404 instead).
func siteHandler(dir string) http.Handler {
	files := http.FileServer(noListing{http.Dir(dir)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasSuffix(r.URL.Path, "/") {
			name := path.Clean("/" + r.URL.Path)
			gz := filepath.Join(dir, filepath.FromSlash(name)+".gz")
			if st, err := os.Stat(gz); err == nil && st.Mode().IsRegular() {
				w.Header().Add("Vary", "Accept-Encoding")
				if acceptsGzip(r) {
					if f, err := os.Open(gz); err == nil {
						defer f.Close()
						ctype := mime.TypeByExtension(path.Ext(name))
						if ctype == "" {
							ctype = "application/octet-stream"
						}
						w.Header().Set("Content-Type", ctype)
						w.Header().Set("Content-Encoding", "gzip")
						http.ServeContent(w, r, name, st.ModTime(), f)
						return
					}
				}
			}
		}
		files.ServeHTTP(w, r)
	})
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// noListing is a file system whose folders open only when they hold an
// index.html, so that http.FileServer never writes a folder listing.
type noListing struct{ fs http.FileSystem }

func (n noListing) Open(name string) (http.File, error) {
	f, err := n.fs.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		index, err := n.fs.Open(path.Join(name, "index.html"))
		if err != nil {
			f.Close()
			return nil, fs.ErrNotExist
		}
		index.Close()
	}
	return f, nil
}
