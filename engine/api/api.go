// Package api is remask's HTTP API: one http.Handler that lists and loads
// models and generates text with per-iteration NDJSON events. The same
// handler runs natively (`remask serve`, net/http), inside the browser page
// (Go compiled to wasm behind github.com/syumai/workers' browser runtime) and
// on the edge, so this package holds nothing specific to an operating
// system: model files are opened through the Loader interface, time comes
// from Config.Now, seeds from Config.NewSeed, and the package has no global
// state and starts no goroutine of its own.
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
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
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
	// AllowOrigins are the origins ("https://host:port") whose pages may call
	// the API from another origin (CORS), such as the demo site hosted
	// elsewhere and pointed at this server; "*" allows every origin. Empty:
	// no cross-origin access (same-origin pages need none).
	AllowOrigins []string
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

	mu      sync.Mutex
	entries map[string]*entry
	order   []string // ids in listing order
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
	if cfg.Loader == nil {
		cfg.Loader = SourceLoader{}
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
		s.entries[ms.ID] = &entry{id: ms.ID, source: ms.Source}
		s.order = append(s.order, ms.ID)
	}
	s.handler = LogRequests(s.log, cfg.Now, http.HandlerFunc(s.route))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// route dispatches by path, then by method. Every answer, errors included,
// is JSON (or NDJSON for streams).
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) {
		return
	}
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
	MaxTokens     int   `json:"max_tokens"`
	MaxIterations int   `json:"max_iterations"`
	MaxQueue      int   `json:"max_queue"`
	MaxBodyBytes  int64 `json:"max_body_bytes"`
	MaxModelBytes int64 `json:"max_model_bytes"`
	Loading       bool  `json:"loading"`
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	running, waiting := s.queue.status()
	h := health{
		Status:       "ok",
		Backend:      s.cfg.Backend.Name(),
		DefaultModel: s.cfg.DefaultModel,
		Queue:        queueStatus{Running: running, Waiting: waiting, Max: s.cfg.MaxQueue},
		Limits: limits{MaxTokens: s.cfg.MaxTokens, MaxIterations: s.cfg.MaxIterations, MaxQueue: s.cfg.MaxQueue,
			MaxBodyBytes: s.cfg.MaxBodyBytes, MaxModelBytes: s.cfg.MaxModelBytes, Loading: !s.cfg.DisableLoading},
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

// cors adds the CORS headers for an allowed Origin and answers a preflight
// request (it then returns true). A request from an origin that is not
// allowed gets no CORS headers, so the browser keeps the answer from the page.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) (answered bool) {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.ContainsFunc(s.cfg.AllowOrigins, func(o string) bool { return o == "*" || strings.EqualFold(o, origin) }) {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Retry-After, Allow")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
