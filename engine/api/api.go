// Package api is remask's HTTP API: one http.Handler that lists and loads
// models and generates text with per-iteration NDJSON events. The same
// handler runs natively (`remask serve`, net/http), inside the browser page
// (Go compiled to wasm behind github.com/syumai/workers' browser runtime) and
// on the edge, so this package holds nothing specific to an operating
// system: model files are opened through the Loader interface, time comes
// from Config.Now, seeds from Config.NewSeed, and the package starts no
// goroutine of its own beyond what ends a request (Stop, deadlines). What
// is specific to a server on a network socket (the Host/Origin/Content-Type
// guard, confining path loads to folders, refusing private URLs) is in
// Guard, Config.ModelDirs and SourceLoader; docs/security.md has the threat
// model.
//
// docs/api.md is the user-facing reference of every endpoint, field, event
// and error.
//
// The compute device is shared fairly: every request that needs it (a
// generation, or putting a model onto the backend) waits in one FIFO queue,
// and only the request at the head of the queue touches the backend's Nets
// (an engine.Net is not safe for concurrent use) or holds activations.
package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remask/remask/engine"
)

// Defaults of the Config limits and names.
const (
	DefaultModelID       = "shakespeare"
	DefaultJudgeID       = "shakespeare-judge"
	DefaultMaxTokens     = 16 * 1024
	DefaultMaxIterations = 1000
	DefaultMaxQueue      = 16
	DefaultMaxBodyBytes  = 1 << 20
	DefaultMaxModelBytes = 2 << 30
	// DefaultMaxWork is num_samples x sequence_length x iterations: 16,384
	// tokens for 256 iterations (the defaults need 16 x 1024 x 15).
	DefaultMaxWork = 16 * 1024 * 256
	// DefaultMaxRequestMemory bounds the activations one request allocates.
	DefaultMaxRequestMemory = 4 << 30
	// DefaultMaxLoadedModels and DefaultMaxModelMemory bound the models
	// held in memory; the least recently used idle model is dropped first.
	DefaultMaxLoadedModels = 8
	DefaultMaxModelMemory  = 4 << 30
	// DefaultLoadTimeout bounds reading one model file or download.
	DefaultLoadTimeout = 10 * time.Minute
	// DefaultMaxRequestDuration bounds a request from its arrival to its
	// last byte, waiting in the queue included.
	DefaultMaxRequestDuration = time.Hour
	// DefaultStreamWriteTimeout bounds each write of an answer: a client
	// that stops reading cannot hold the device.
	DefaultStreamWriteTimeout = 30 * time.Second
)

// The other shipped models (models/, docs/models.md), by library id.
const (
	// LightModelID is the small language model (4 x 192, 3.9 MB): the one
	// to use first where the flagship is slow (the CPU backend, software
	// adapters, small screens, a page's first run).
	LightModelID = "shakespeare-small"
	// DefaultRemaskerID is the token classifier for remasking "model" (the
	// external remasking model), trained on both language models' mistakes.
	DefaultRemaskerID = "shakespeare-remasker"
)

// ModelSource is one library entry: a model id and where its file lives, a
// path or an http(s) URL (the Loader decides what it can open).
type ModelSource struct {
	ID     string
	Source string
}

// Config configures a Server. Only Backend is required.
type Config struct {
	// Models is the library: the models the server knows by id, in listing
	// order. Ids are 1-64 characters of [A-Za-z0-9._-], start with a letter
	// or digit, are unique, and "none" is reserved.
	Models []ModelSource
	// DefaultModel is the id used when a request names no model
	// (DefaultModelID when empty).
	DefaultModel string
	// DefaultJudge is the judge used when a request names none and its
	// quality metric is auto or judge, if the library has it
	// (DefaultJudgeID when empty; "none" = no default judge).
	DefaultJudge string
	// Backend loads the models and runs them; one generation at a time.
	Backend engine.Backend
	// Loader opens model files (nil = SourceLoader{}: file paths and
	// http(s) URLs).
	Loader Loader
	// MaxTokens caps num_samples x sequence_length per request.
	MaxTokens int
	// MaxIterations caps the iterations (or masking_ratios) per request.
	MaxIterations int
	// MaxQueue is how many requests may wait for the device; one more is
	// refused with 503 and Retry-After.
	MaxQueue int
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// MaxModelBytes caps a model file read by the server.
	MaxModelBytes int64
	// DisableLoading refuses POST /v1/models with a path or a URL (403); ids
	// of the library can still be loaded.
	DisableLoading bool
	// ModelDirs are the folders POST /v1/models may load a "path" from when
	// Loader is nil (the native file system): a path is refused unless the
	// file, symlinks resolved, lies inside one of them. Empty: no path
	// loads. A custom Loader decides itself which sources it opens.
	ModelDirs []string
	// AllowPrivateURLs lets "url" loads (Loader nil) reach loopback,
	// private, link-local and other non-public addresses; the check is made
	// on the address actually dialled.
	AllowPrivateURLs bool
	// LoadTimeout bounds one model read (DefaultLoadTimeout when 0).
	LoadTimeout time.Duration
	// MaxWork caps num_samples x sequence_length x iterations per request
	// (DefaultMaxWork when 0).
	MaxWork int64
	// MaxRequestMemory caps the activation bytes one generation may
	// allocate, estimated from the models' shapes before anything is
	// allocated (DefaultMaxRequestMemory when 0).
	MaxRequestMemory int64
	// MaxLoadedModels and MaxModelMemory bound the models held in memory
	// (weights and their activation buffers); beyond them the least recently
	// used model that no request is using is dropped (it loads again when
	// needed). Defaults: DefaultMaxLoadedModels, DefaultMaxModelMemory.
	MaxLoadedModels int
	MaxModelMemory  int64
	// MaxRequestDuration ends any request that runs longer, with an error
	// (DefaultMaxRequestDuration when 0).
	MaxRequestDuration time.Duration
	// StreamWriteTimeout bounds each write to the client
	// (DefaultStreamWriteTimeout when 0).
	StreamWriteTimeout time.Duration
	// Logger gets one line per request (nil = no logging).
	Logger *slog.Logger
	// Now is the clock for request durations (nil = time.Now).
	Now func() time.Time
	// NewSeed draws the seed of a request that gives none (nil = 53 random
	// bits from crypto/rand, so that JavaScript numbers hold it exactly).
	NewSeed func() (uint64, error)
}

// Server is the API handler. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	queue   *queue
	loadSem chan struct{} // one model file read at a time (bounds memory)
	// confine resolves a "path" of POST /v1/models to a file inside
	// ModelDirs; nil with a custom Loader.
	confine func(path string) (string, *apiError)

	stopCtx  context.Context // cancelled by Stop
	stop     context.CancelCauseFunc
	inflight atomic.Int64 // requests being served

	mu       sync.Mutex
	entries  map[string]*entry
	order    []string     // ids in listing order
	retired  []engine.Net // dropped from the cache; closed by the next device turn
	useClock int64        // counts model uses, for least-recently-used eviction
}

// New returns a Server for cfg. It panics on programmer mistakes in cfg (no
// backend, a malformed or duplicate model id).
func New(cfg Config) *Server {
	if cfg.Backend == nil {
		panic("api: Config.Backend is nil")
	}
	if cfg.DefaultModel == "" {
		cfg.DefaultModel = DefaultModelID
	}
	if cfg.DefaultJudge == "" {
		cfg.DefaultJudge = DefaultJudgeID
	}
	native := cfg.Loader == nil
	if native {
		cfg.Loader = SourceLoader{AllowPrivate: cfg.AllowPrivateURLs}
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.MaxIterations <= 0 {
		cfg.MaxIterations = DefaultMaxIterations
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxModelBytes <= 0 {
		cfg.MaxModelBytes = DefaultMaxModelBytes
	}
	if cfg.MaxWork <= 0 {
		cfg.MaxWork = DefaultMaxWork
	}
	if cfg.MaxRequestMemory <= 0 {
		cfg.MaxRequestMemory = DefaultMaxRequestMemory
	}
	if cfg.MaxLoadedModels <= 0 {
		cfg.MaxLoadedModels = DefaultMaxLoadedModels
	}
	if cfg.MaxModelMemory <= 0 {
		cfg.MaxModelMemory = DefaultMaxModelMemory
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	if cfg.MaxRequestDuration <= 0 {
		cfg.MaxRequestDuration = DefaultMaxRequestDuration
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewSeed == nil {
		cfg.NewSeed = randomSeed
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		queue:   newQueue(cfg.MaxQueue),
		loadSem: make(chan struct{}, 1),
		entries: map[string]*entry{},
	}
	s.stopCtx, s.stop = context.WithCancelCause(context.Background())
	if native {
		s.confine = confineTo(cfg.ModelDirs)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, ms := range cfg.Models {
		if err := CheckID(ms.ID); err != nil {
			panic(fmt.Sprintf("api: Config.Models: %v", err))
		}
		if _, dup := s.entries[ms.ID]; dup {
			panic(fmt.Sprintf("api: Config.Models: id %q appears twice", ms.ID))
		}
		if ms.Source == "" {
			panic(fmt.Sprintf("api: Config.Models: id %q has no source", ms.ID))
		}
		s.entries[ms.ID] = &entry{id: ms.ID, source: ms.Source, library: true}
		s.order = append(s.order, ms.ID)
	}
	s.handler = LogRequests(s.log, cfg.Now, http.HandlerFunc(s.route))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.handler.ServeHTTP(w, r)
}

// ErrShuttingDown is the cause of the requests that Stop ends.
var ErrShuttingDown = errors.New("the server is shutting down")

// errRequestTimeout is the cause of a request that ran past MaxRequestDuration.
var errRequestTimeout = errors.New("request timeout")

// Stop ends every request in flight: a stream gets an error event
// (shutting_down) as its last line, a request that has written nothing a
// 503. It waits until they returned or ctx ends. New requests are refused
// with 503. Call it when a graceful shutdown's grace period is over.
func (s *Server) Stop(ctx context.Context) error {
	s.stop(ErrShuttingDown)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// requestContext is r's context, ended also by Stop and after
// MaxRequestDuration, each with its cause.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stopAfter := context.AfterFunc(s.stopCtx, func() { cancel(ErrShuttingDown) })
	tctx, tcancel := context.WithTimeoutCause(ctx, s.cfg.MaxRequestDuration, errRequestTimeout)
	return tctx, func() {
		stopAfter()
		tcancel()
		cancel(context.Canceled)
	}
}

// endedBy is the answer for a request whose context ended, or nil when
// the client went away (nothing can be written then).
func (s *Server) endedBy(ctx context.Context) *apiError {
	switch context.Cause(ctx) {
	case ErrShuttingDown:
		return &apiError{status: http.StatusServiceUnavailable, Code: "shutting_down",
			Message: "the server is shutting down and ended this request; retry on a running server"}
	case errRequestTimeout:
		return &apiError{status: http.StatusServiceUnavailable, Code: "request_timeout",
			Message: fmt.Sprintf("the request ran longer than this server's limit of %s per request (--max-request-seconds); ask for less work", s.cfg.MaxRequestDuration)}
	}
	return nil
}

// route dispatches by path, then by method. Every answer, errors included,
// is JSON (or NDJSON for streams).
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if s.stopCtx.Err() != nil {
		writeError(w, s.endedBy(s.stopCtx))
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	r = r.WithContext(ctx)
	// The whole answer may take up to the request's limit (a stream moves
	// its deadline on with every event); http.Server's WriteTimeout is for
	// the static files. An unsupported writer (tests, wasm) has no deadline.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.MaxRequestDuration + s.cfg.StreamWriteTimeout))
	type endpoint struct {
		methods []string
		serve   func(http.ResponseWriter, *http.Request)
	}
	var ep endpoint
	switch r.URL.Path {
	case "/v1/health":
		ep = endpoint{[]string{http.MethodGet}, s.serveHealth}
	case "/v1/models":
		ep = endpoint{[]string{http.MethodGet, http.MethodPost}, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				s.serveModels(w, r)
				return
			}
			s.serveLoad(w, r)
		}}
	case "/v1/generate":
		ep = endpoint{[]string{http.MethodPost}, s.serveGenerate}
	default:
		writeError(w, &apiError{status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("no endpoint %s; the API has GET /v1/health, GET and POST /v1/models, POST /v1/generate (docs/api.md)", r.URL.Path)})
		return
	}
	for _, m := range ep.methods {
		if r.Method == m {
			ep.serve(w, r)
			return
		}
	}
	allow := strings.Join(ep.methods, ", ")
	w.Header().Set("Allow", allow)
	writeError(w, &apiError{status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: fmt.Sprintf("%s %s is not supported; allowed: %s", r.Method, r.URL.Path, allow)})
}

// health is the GET /v1/health answer.
type health struct {
	Status       string      `json:"status"`
	Backend      string      `json:"backend"`
	Models       int         `json:"models"`
	Loaded       int         `json:"loaded"`
	DefaultModel string      `json:"default_model"`
	Queue        queueStatus `json:"queue"`
	Limits       limits      `json:"limits"`
}

type queueStatus struct {
	Running bool `json:"running"`
	Waiting int  `json:"waiting"`
	Max     int  `json:"max"`
}

type limits struct {
	MaxTokens         int     `json:"max_tokens"`
	MaxIterations     int     `json:"max_iterations"`
	MaxWork           int64   `json:"max_work"`
	MaxQueue          int     `json:"max_queue"`
	MaxBodyBytes      int64   `json:"max_body_bytes"`
	MaxModelBytes     int64   `json:"max_model_bytes"`
	MaxRequestMemory  int64   `json:"max_request_memory"`
	MaxLoadedModels   int     `json:"max_loaded_models"`
	MaxModelMemory    int64   `json:"max_model_memory"`
	MaxRequestSeconds float64 `json:"max_request_seconds"`
	Loading           bool    `json:"loading"`
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	running, waiting := s.queue.status()
	h := health{
		Status:       "ok",
		Backend:      s.cfg.Backend.Name(),
		DefaultModel: s.cfg.DefaultModel,
		Queue:        queueStatus{Running: running, Waiting: waiting, Max: s.cfg.MaxQueue},
		Limits: limits{MaxTokens: s.cfg.MaxTokens, MaxIterations: s.cfg.MaxIterations, MaxWork: s.cfg.MaxWork, MaxQueue: s.cfg.MaxQueue,
			MaxBodyBytes: s.cfg.MaxBodyBytes, MaxModelBytes: s.cfg.MaxModelBytes, MaxRequestMemory: s.cfg.MaxRequestMemory,
			MaxLoadedModels: s.cfg.MaxLoadedModels, MaxModelMemory: s.cfg.MaxModelMemory,
			MaxRequestSeconds: s.cfg.MaxRequestDuration.Seconds(), Loading: !s.cfg.DisableLoading},
	}
	for _, e := range s.snapshot() {
		h.Models++
		if e.loadedModel() != nil {
			h.Loaded++
		}
	}
	writeJSON(w, http.StatusOK, h)
}

// randomSeed draws 53 random bits: every seed fits a JavaScript number.
func randomSeed() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("drawing a random seed: %w; pass \"seed\"", err)
	}
	return binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1), nil
}
