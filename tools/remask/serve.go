package main

// This file is `remask serve`: the generation API of engine/api over
// net/http, plus the static files of the built demo site.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/remask/remask/engine/api"
)

// defaultSiteDir is the built site, served when it exists and --site is not given.
var defaultSiteDir = filepath.Join("site", "dist")

// shutdownTimeout is how long running requests get to finish after
// SIGINT/SIGTERM before their connections are closed.
const shutdownTimeout = 10 * time.Second

type serveArgs struct {
	addr      string
	models    string
	site      string
	threads   int
	maxTokens int
	maxQueue  int
	origins   string
}

func serveFlags() (*flagSet, *serveArgs) {
	a := &serveArgs{}
	fs := newFlagSet("serve", "[flags]",
		"Serves the generation API (docs/api.md) and the built demo site. The API lists, loads and\n"+
			"runs the models of the library: the *.safetensors files found as `remask models` lists\n"+
			"them, each known by its file name without .safetensors. Requests share the compute\n"+
			"device in a FIFO queue. Stops gracefully on Ctrl-C (SIGINT) or SIGTERM.\n"+
			"The API reads any model path or URL a client names (POST /v1/models): keep --addr on\n"+
			"a loopback address unless every client may do that.")
	fs.stringVar(&a.addr, "addr", "127.0.0.1:8080", "HOST:PORT", "address to listen on; port 0 picks a free port (the log says which)")
	fs.stringVar(&a.models, "models", "", "DIR", "an extra model folder, searched before $REMASK_MODELS, ./models and <executable dir>/../models")
	fs.showDefault("models", "none")
	fs.stringVar(&a.site, "site", "", "DIR", "folder of the built site, served at /")
	fs.showDefault("site", defaultSiteDir+" if it exists, else no site")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core, else 1 or more")
	fs.intVar(&a.maxTokens, "max-tokens", api.DefaultMaxTokens, "N", "most num_samples x sequence_length per request; 1 or more")
	fs.intVar(&a.maxQueue, "max-queue", api.DefaultMaxQueue, "N", "most requests waiting for the device; more are refused with 503; 1 or more")
	fs.stringVar(&a.origins, "allow-origin", "", "LIST", "comma-separated origins (https://host:port, or *) whose pages may call the API from elsewhere (CORS), e.g. the demo site hosted on another server")
	fs.showDefault("allow-origin", "none")
	return fs, a
}

// serveCommand is `remask serve`. It returns when ctx ends (Ctrl-C) or on
// SIGTERM, after a graceful shutdown.
func serveCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := serveFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	switch {
	case a.addr == "":
		return flagError("addr", "is empty; give HOST:PORT such as 127.0.0.1:8080")
	case a.threads < 0:
		return flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	case a.maxTokens < 1:
		return flagError("max-tokens", "%d is out of range; must be 1 or more (default %d)", a.maxTokens, api.DefaultMaxTokens)
	case a.maxQueue < 1:
		return flagError("max-queue", "%d is out of range; must be 1 or more (default %d)", a.maxQueue, api.DefaultMaxQueue)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, nil))

	dirs := libraryDirs(a.models, c.getenv, c.executable)
	if a.models != "" && !dirs[0].Exists {
		return flagError("models", "%s is not a folder", a.models)
	}
	found, err := scanLibrary(dirs)
	if err != nil {
		return err
	}
	sources, skipped := librarySources(found)
	for _, s := range skipped {
		log.Warn("model file not used", "why", s)
	}

	site, err := siteDir(a.site, fs.wasSet("site"))
	if err != nil {
		return err
	}

	be, note, err := newBackend(ctx, "auto", a.threads)
	if err != nil {
		return err
	}
	apiServer := api.New(api.Config{
		Models:       sources,
		Backend:      be,
		MaxTokens:    a.maxTokens,
		MaxQueue:     a.maxQueue,
		Logger:       log,
		AllowOrigins: originList(a.origins),
	})

	var searched []string
	for _, d := range dirs {
		if d.Exists {
			searched = append(searched, fmt.Sprintf("%s (%d)", d.Path, d.Models))
		}
	}
	log.Info("model library", "models", len(sources), "ids", strings.Join(idsOf(sources), ","), "folders", strings.Join(searched, ", "))
	if !hasID(sources, api.DefaultModelID) {
		log.Warn("the default model is not in the library: requests must name a model", "id", api.DefaultModelID,
			"want", api.DefaultModelID+".safetensors in one of the model folders")
	}
	log.Info("backend", "name", be.Name(), "note", note)

	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another server running there? pick another --addr)", a.addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", apiServer)
	if site != "" {
		mux.Handle("/", api.LogRequests(log, nil, siteHandler(site)))
		log.Info("site", "dir", site)
	} else {
		mux.Handle("/", api.LogRequests(log, nil, http.HandlerFunc(noSite)))
		if fs.wasSet("site") {
			log.Info("site", "dir", "none (--site \"\")")
		} else {
			log.Info("no site: serving the API only", "missing", defaultSiteDir, "hint", "build the site there or pass --site DIR")
		}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM) // the caller's ctx covers Ctrl-C
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "url", "http://"+ln.Addr().String()+"/", "api", "http://"+ln.Addr().String()+"/v1/health")

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running after the grace period; closing their connections", "err", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	log.Info("stopped")
	return nil
}

// siteDir resolves --site: the named folder (which must exist), else the
// default build folder when it exists, else "" (no site).
func siteDir(flag string, set bool) (string, error) {
	if set {
		if flag == "" {
			return "", nil // --site "" turns the site off
		}
		st, err := os.Stat(flag)
		if err != nil || !st.IsDir() {
			return "", flagError("site", "%s is not a folder; build the site first, or leave --site out", flag)
		}
		return flag, nil
	}
	if st, err := os.Stat(defaultSiteDir); err == nil && st.IsDir() {
		return defaultSiteDir, nil
	}
	return "", nil
}

// noSite answers every non-API path when no site is served.
func noSite(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"error":{"code":"not_found","message":"no site is served here (build it into %s or pass --site DIR); the API is at /v1/ (GET /v1/health, GET /v1/models, POST /v1/generate)"}}`+"\n",
		filepath.ToSlash(defaultSiteDir))
}

// originList splits --allow-origin.
func originList(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}

func idsOf(sources []api.ModelSource) []string {
	ids := make([]string, len(sources))
	for i, s := range sources {
		ids[i] = s.ID
	}
	return ids
}

func hasID(sources []api.ModelSource, id string) bool {
	for _, s := range sources {
		if s.ID == id {
			return true
		}
	}
	return false
}
