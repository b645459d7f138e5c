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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remask/remask/engine/api"
)

// defaultSiteDir is the built site, served when it exists and --site is not given.
var defaultSiteDir = filepath.Join("site", "dist")

type serveArgs struct {
	addr        string
	modelsDirs  []string
	site        string
	backend     string
	threads     int
	limits      string
	precision   string
	maxTokens   int
	maxQueue    int
	maxWork     int64
	reqMemory   int64
	maxModels   int
	modelMemory int64
	maxSeconds  int
	origins     []string
	hosts       []string
	privateURLs bool
	readTO      time.Duration
	writeTO     time.Duration
	idleTO      time.Duration
	loadTO      time.Duration
	shutdownTO  time.Duration
}

func serveFlags() (*flagSet, *serveArgs) {
	a := &serveArgs{}
	fs := newFlagSet("serve", "[flags]",
		"Serves the generation API (docs/api.md) and the built demo site. The API lists, loads and\n"+
			"runs the models of the library: the *.safetensors files found as `remask models` lists\n"+
			"them, each known by its file name without .safetensors. Requests share the compute\n"+
			"device in a FIFO queue. Stops gracefully on Ctrl-C (SIGINT) or SIGTERM.",
		"Only pages of this server and of loopback origins may use the API, only under this\n"+
			"server's address, localhost or a loopback IP as Host, and POST /v1/models loads files of\n"+
			"the model folders and public URLs only: docs/security.md says why and what each flag opens.")
	fs.group("Server")
	fs.stringVar(&a.addr, "addr", "127.0.0.1:8080", "HOST:PORT", "address to listen on; port 0 picks a free port (the log says which); a non-loopback address is reachable from other machines (a warning says so)")
	fs.listVar(&a.modelsDirs, "models-dir", "DIR", "a model folder, searched before $REMASK_MODELS, ./models, ~/.local/share/remask/models and <executable dir>/../models; repeatable. POST /v1/models loads paths inside these folders only")
	fs.showDefault("models-dir", "none")
	fs.listVar(&a.modelsDirs, "models", "DIR", "the same as --models-dir")
	fs.showDefault("models", "none")
	fs.stringVar(&a.site, "site", "", "DIR", "folder of the built site, served at / (never as a folder listing)")
	fs.showDefault("site", defaultSiteDir+" if it exists, else no site")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto (WebGPU with a hardware adapter, else the CPU), cpu or gpu")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core, else 1 or more")
	fs.stringVar(&a.limits, "limits", "adapter", "WHICH", limitsHelp)
	fs.stringVar(&a.precision, "precision", "auto", "P", precisionHelp)
	fs.group("Limits")
	fs.intVar(&a.maxTokens, "max-tokens", api.DefaultMaxTokens, "N", "most num_samples x sequence_length per request; 1 or more")
	fs.int64Var(&a.maxWork, "max-work", api.DefaultMaxWork, "N", "most num_samples x sequence_length x iterations per request; 1 or more")
	fs.sizeVar(&a.reqMemory, "max-request-memory", 0, "BYTES", "most activation memory one generation may allocate, estimated from the models' shapes before allocating; bytes, or with a binary unit: 512M, 2GiB, 1.5T")
	fs.showDefault("max-request-memory", "4GiB, or a quarter of the machine's memory if less")
	fs.intVar(&a.maxModels, "max-loaded-models", api.DefaultMaxLoadedModels, "N", "most models held in memory; the least recently used idle one is dropped first; 1 or more")
	fs.sizeVar(&a.modelMemory, "max-model-memory", 0, "BYTES", "most memory of the models held (weights and their activation buffers), beyond which idle models are dropped; bytes, or with a unit: 4GiB")
	fs.showDefault("max-model-memory", "4GiB, or a quarter of the machine's memory if less")
	fs.intVar(&a.maxQueue, "max-queue", api.DefaultMaxQueue, "N", "most requests waiting for the device; more are refused with 503; 1 or more")
	fs.intVar(&a.maxSeconds, "max-request-seconds", int(api.DefaultMaxRequestDuration/time.Second), "N", "longest a request may run, waiting included; a longer one ends with request_timeout; 1 or more")
	fs.durationVar(&a.readTO, "read-timeout", 60*time.Second, "DURATION", "longest time to receive a request's headers and body")
	fs.durationVar(&a.writeTO, "write-timeout", 60*time.Second, "DURATION", "longest a client may take to take a site file, or each event of a stream")
	fs.durationVar(&a.idleTO, "idle-timeout", 60*time.Second, "DURATION", "how long an idle keep-alive connection stays open")
	fs.durationVar(&a.loadTO, "load-timeout", api.DefaultLoadTimeout, "DURATION", "longest time to read one model file or download")
	fs.durationVar(&a.shutdownTO, "shutdown-timeout", 10*time.Second, "DURATION", "on Ctrl-C or SIGTERM, how long running requests get to finish before they end with an error event")
	fs.group("Access")
	fs.listVar(&a.origins, "allow-origin", "ORIGIN", "an origin (https://host:port, or *) whose pages may also use the API (CORS), e.g. the demo site hosted elsewhere; repeatable, comma-separated lists too; adds to $REMASK_ORIGINS")
	fs.showDefault("allow-origin", "this server's own pages and loopback origins")
	fs.listVar(&a.hosts, "allow-host", "NAME", "a host name (or *) requests may address the server by, besides its address, localhost and loopback IPs; repeatable; adds to $REMASK_HOSTS")
	fs.showDefault("allow-host", "none")
	fs.boolVar(&a.privateURLs, "allow-private-urls", false, "let POST /v1/models download from loopback, private and link-local addresses")
	return fs, a
}

// serveCommand is `remask serve`. It returns when ctx ends (Ctrl-C) or on
// SIGTERM, after a graceful shutdown.
func serveCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := serveFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	positive := func(name string, v int64) error {
		if v < 1 {
			return flagError(name, "%d is out of range; must be 1 or more", v)
		}
		return nil
	}
	if a.addr == "" {
		return flagError("addr", "is empty; give HOST:PORT such as 127.0.0.1:8080")
	}
	if a.threads < 0 {
		return flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max-tokens", int64(a.maxTokens)}, {"max-queue", int64(a.maxQueue)}, {"max-work", a.maxWork},
		{"max-loaded-models", int64(a.maxModels)}, {"max-request-seconds", int64(a.maxSeconds)}} {
		if err := positive(f.name, f.v); err != nil {
			return err
		}
	}
	if a.maxSeconds > 366*24*3600 {
		return flagError("max-request-seconds", "%d is out of range; at most a year (%d)", a.maxSeconds, 366*24*3600)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"read-timeout", a.readTO}, {"write-timeout", a.writeTO}, {"idle-timeout", a.idleTO}, {"load-timeout", a.loadTO}, {"shutdown-timeout", a.shutdownTO}} {
		if f.v <= 0 {
			return flagError(f.name, "%s is out of range; give a positive duration such as 30s or 2m", f.v)
		}
	}
	budget := defaultMemoryBudget()
	if !fs.wasSet("max-request-memory") {
		a.reqMemory = budget
	}
	if !fs.wasSet("max-model-memory") {
		a.modelMemory = budget
	}
	if a.reqMemory < 1<<20 {
		return flagError("max-request-memory", "%d bytes is out of range; must be 1MiB or more", a.reqMemory)
	}
	if a.modelMemory < 1<<20 {
		return flagError("max-model-memory", "%d bytes is out of range; must be 1MiB or more", a.modelMemory)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, nil))

	dirs, err := serveLibraryDirs(a.modelsDirs, c.getenv, c.executable)
	if err != nil {
		return err
	}
	found, err := scanLibrary(dirs)
	if err != nil {
		return err
	}
	sources, skipped := librarySources(found)
	for _, s := range skipped {
		log.Warn("model file not used", "why", s)
	}
	var modelDirs []string
	for _, d := range dirs {
		if d.Exists {
			modelDirs = append(modelDirs, d.Path)
		}
	}

	site, err := siteDir(a.site, fs.wasSet("site"))
	if err != nil {
		return err
	}

	gopts, err := deviceOptions(a.backend, a.limits, a.precision)
	if err != nil {
		return err
	}
	be, note, err := openBackend(ctx, a.backend, a.threads, gopts)
	if err != nil {
		return err
	}
	apiServer := api.New(api.Config{
		Models:             sources,
		Backend:            be,
		MaxTokens:          a.maxTokens,
		MaxQueue:           a.maxQueue,
		MaxWork:            a.maxWork,
		MaxRequestMemory:   a.reqMemory,
		MaxLoadedModels:    a.maxModels,
		MaxModelMemory:     a.modelMemory,
		MaxRequestDuration: time.Duration(a.maxSeconds) * time.Second,
		StreamWriteTimeout: a.writeTO,
		LoadTimeout:        a.loadTO,
		ModelDirs:          modelDirs,
		AllowPrivateURLs:   a.privateURLs,
		Logger:             log,
	})
	policy := api.Policy{
		AllowOrigins: append(envList(c.getenv("REMASK_ORIGINS")), a.origins...),
		AllowHosts:   append(envList(c.getenv("REMASK_HOSTS")), a.hosts...),
		Log:          log,
	}

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
	if len(policy.AllowOrigins) > 0 || len(policy.AllowHosts) > 0 || a.privateURLs {
		log.Info("access", "allow_origins", strings.Join(policy.AllowOrigins, ","), "allow_hosts", strings.Join(policy.AllowHosts, ","), "allow_private_urls", a.privateURLs)
	}

	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another server running there? pick another --addr)", a.addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("listening on a non-loopback address: other machines can reach this server and run generations on it; use --addr 127.0.0.1:PORT unless that is intended (docs/security.md)", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api.Guard(policy, apiServer))
	if site != "" {
		mux.Handle("/", api.HostGuard(policy, api.LogRequests(log, nil, siteHandler(site))))
		log.Info("site", "dir", site)
	} else {
		mux.Handle("/", api.HostGuard(policy, api.LogRequests(log, nil, http.HandlerFunc(noSite))))
		if fs.wasSet("site") {
			log.Info("site", "dir", "none (--site \"\")")
		} else {
			log.Info("no site: serving the API only", "missing", defaultSiteDir, "hint", "build the site there or pass --site DIR")
		}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(a.readTO, 10*time.Second),
		ReadTimeout:       a.readTO,
		// The API moves this deadline itself (each request's limit, each
		// stream event); it bounds the site's files.
		WriteTimeout:   a.writeTO,
		IdleTimeout:    a.idleTO,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
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
	log.Info("shutting down", "grace", a.shutdownTO)
	sctx, cancel := context.WithTimeout(context.Background(), a.shutdownTO)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Past the grace period: every running request ends with an error
		// event (shutting_down), then the connections close.
		log.Warn("requests still running after the grace period; ending them", "err", err)
		ectx, ecancel := context.WithTimeout(context.Background(), 5*time.Second)
		apiServer.Stop(ectx)
		srv.Shutdown(ectx) // lets the ended answers finish their last bytes
		ecancel()
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	log.Info("stopped")
	return nil
}

// serveLibraryDirs are the model folders of serve: each --models-dir (which
// must exist), then the folders every command searches.
func serveLibraryDirs(flagDirs []string, getenv func(string) string, executable func() (string, error)) ([]libraryDir, error) {
	var dirs []libraryDir
	seen := map[string]bool{}
	key := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return filepath.Clean(p)
	}
	for _, d := range flagDirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, flagError("models-dir", "%s is not a folder", d)
		}
		if !seen[key(d)] {
			seen[key(d)] = true
			dirs = append(dirs, libraryDir{Path: d, Origin: "--models-dir", Exists: true})
		}
	}
	for _, d := range libraryDirs("", getenv, executable) {
		if !seen[key(d.Path)] {
			seen[key(d.Path)] = true
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// defaultMemoryBudget is the default of --max-request-memory and
// --max-model-memory: 4 GiB, or a quarter of the machine's memory when that
// is known and less.
func defaultMemoryBudget() int64 {
	budget := int64(api.DefaultMaxRequestMemory)
	if total := totalMemory(); total > 0 && total/4 < budget {
		budget = max(total/4, 64<<20)
	}
	return budget
}

// totalMemory is MemTotal of /proc/meminfo in bytes (0 where unknown).
func totalMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return 0
}

// envList splits a comma-separated environment variable.
func envList(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
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
