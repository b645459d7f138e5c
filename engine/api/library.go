package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/safefile"
)

// Loader opens model files. The native server reads file paths and http(s)
// URLs (SourceLoader); the browser build supplies one that calls fetch.
type Loader interface {
	// Open starts reading the model file at source. size is its length in
	// bytes, or -1 when unknown. A source that does not exist is an error
	// that wraps fs.ErrNotExist.
	Open(ctx context.Context, source string) (body io.ReadCloser, size int64, err error)
}

// SourceLoader opens http:// and https:// URLs and anything else as a file
// path. Paths must name regular files (a FIFO or a device is refused at
// once instead of blocking). URLs are fetched with Client; when Client is
// nil, with a client that refuses to connect to loopback, private,
// link-local and other non-public addresses unless AllowPrivate (the check
// is made on each address dialled, redirects included, so a name that
// resolves to 127.0.0.1 is refused too).
type SourceLoader struct {
	Client       *http.Client
	AllowPrivate bool
}

// IsURL reports whether source is an http(s) URL rather than a path.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://")
}

// Open implements Loader.
func (l SourceLoader) Open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	if !IsURL(source) {
		f, st, err := safefile.OpenRegular(source)
		if err != nil {
			if st, serr := os.Stat(source); serr == nil && st.IsDir() {
				return nil, 0, fmt.Errorf("%s is a folder; give the .safetensors file", source)
			}
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, 0, err
	}
	client := l.Client
	if client == nil {
		client = publicOnlyClient()
		if l.AllowPrivate {
			client = anyAddrClient()
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		var pe *privateAddrError
		if errors.As(err, &pe) {
			return nil, 0, pe
		}
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := fmt.Errorf("GET %s: %s", source, resp.Status)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			err = fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
		}
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// entry is one model of the library. The parsed model is shared read-only;
// the Net is touched only by the request that holds the device's turn.
type entry struct {
	id      string
	source  string
	library bool // from Config.Models: stays listed when dropped from memory

	// Cache bookkeeping, guarded by Server.mu.
	users    int   // requests using the model now: never dropped then
	lastUsed int64 // Server.useClock at the last use
	weights  int64 // bytes of the parsed weights (0 until loaded)
	act      int64 // estimated activation bytes of the largest request run

	mu      sync.Mutex
	m       *model.Model  // parsed and validated; nil until loaded
	loading chan struct{} // non-nil while one request reads the file
	info    *ModelInfo    // header facts, cached before the model is loaded
	net     engine.Net    // on the backend; guarded by the device turn
}

func (e *entry) loadedModel() *model.Model {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m
}

// snapshot lists the library in order.
func (s *Server) snapshot() []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*entry, len(s.order))
	for i, id := range s.order {
		out[i] = s.entries[id]
	}
	return out
}

func (s *Server) lookup(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[id]
}

func (s *Server) knownIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

// unknownModel is the 404 for an id the library lacks.
func (s *Server) unknownModel(field, id string) *apiError {
	return &apiError{status: http.StatusNotFound, Code: "unknown_model", Field: field,
		Message: fmt.Sprintf("model %q is not in the library; %s", id, s.knownList()), Known: s.knownIDs()}
}

// knownList says which ids the library has, for messages.
func (s *Server) knownList() string {
	known := s.knownIDs()
	if len(known) == 0 {
		return "the library is empty: load a model with POST /v1/models"
	}
	return "known ids: " + strings.Join(known, ", ")
}

// CheckID says what is wrong with a model id (nil for a valid one): 1-64
// characters of [A-Za-z0-9._-], starting with a letter or digit, not "none".
func CheckID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("id %q must be 1 to 64 characters long", id)
	}
	if id == "none" {
		return fmt.Errorf("id \"none\" is reserved (it means no judge)")
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("id %q may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit", id)
		}
	}
	return nil
}

// progressFunc reports bytes read of total (-1 when unknown).
type progressFunc func(done, total int64)

// ensureModel returns e's parsed model, reading the file once: concurrent
// callers wait for the one that reads. progress (may be nil) sees the
// bytes of a read this call performs.
func (s *Server) ensureModel(ctx context.Context, e *entry, progress progressFunc) (*model.Model, error) {
	for {
		e.mu.Lock()
		if e.m != nil {
			m := e.m
			e.mu.Unlock()
			return m, nil
		}
		if ch := e.loading; ch != nil {
			e.mu.Unlock()
			select {
			case <-ch:
				continue // loaded, or failed: then this call tries itself
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		e.loading = ch
		e.mu.Unlock()

		m, size, err := s.readModel(ctx, e.source, progress)
		e.mu.Lock()
		e.loading = nil
		if err == nil {
			e.m = m
			info := InfoOf(m)
			info.Bytes = size
			e.info = &info
		}
		e.mu.Unlock()
		close(ch)
		if err == nil {
			s.noteLoaded(e, m)
		}
		return m, err
	}
}

// readModel reads and parses the file at source, one file at a time, and
// returns the model and the file's size.
func (s *Server) readModel(parent context.Context, source string, progress progressFunc) (*model.Model, int64, error) {
	ctx, cancel := context.WithTimeoutCause(parent, s.cfg.LoadTimeout, errLoadTimeout)
	defer cancel()
	timedOut := func() error {
		return &loadError{source: source, err: fmt.Errorf("reading %s took longer than this server's limit of %s per model (--load-timeout)", source, s.cfg.LoadTimeout), timeout: true}
	}
	select {
	case s.loadSem <- struct{}{}:
		defer func() { <-s.loadSem }()
	case <-ctx.Done():
		if parent.Err() == nil {
			return nil, 0, timedOut()
		}
		return nil, 0, ctx.Err()
	}
	data, err := readSource(ctx, s.cfg.Loader, source, s.cfg.MaxModelBytes, progress)
	if err != nil {
		if parent.Err() == nil && context.Cause(ctx) == errLoadTimeout {
			return nil, 0, timedOut()
		}
		return nil, 0, err
	}
	m, err := model.Parse(source, data)
	if err != nil {
		return nil, 0, &loadError{source: source, err: err, invalid: true}
	}
	return m, int64(len(data)), nil
}

// loadError is a model file that could not be read or is not valid.
type loadError struct {
	source  string
	err     error
	invalid bool // the bytes arrived but are not a valid model file
	timeout bool // the read took longer than Config.LoadTimeout
}

var errLoadTimeout = errors.New("model load timeout")

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// readChunk is how much readSource reads between progress reports.
const readChunk = 256 << 10

// readSource reads the whole file at source, at most max bytes.
func readSource(ctx context.Context, l Loader, source string, max int64, progress progressFunc) ([]byte, error) {
	body, size, err := l.Open(ctx, source)
	if err != nil {
		return nil, &loadError{source: source, err: fmt.Errorf("opening %s: %w", source, err)}
	}
	defer body.Close()
	if size > max {
		return nil, &loadError{source: source, err: fmt.Errorf("%s is %d bytes, more than this server's limit of %d bytes per model file", source, size, max), invalid: true}
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	progress(0, size)
	var buf []byte
	if size >= 0 {
		buf = make([]byte, 0, size)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			if size >= 0 && int64(len(buf)) == size {
				// Everything announced has arrived: expect the end.
				var extra [1]byte
				n, err := io.ReadFull(body, extra[:])
				if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
					break
				}
				if err != nil && ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if err != nil {
					return nil, &loadError{source: source, err: fmt.Errorf("reading %s after %d bytes: %w", source, len(buf), err)}
				}
				return nil, &loadError{source: source, err: fmt.Errorf("%s is longer than the %d bytes announced (did it change while being read?)", source, size), invalid: true}
			}
			buf = slices.Grow(buf, readChunk)
		}
		end := min(cap(buf), len(buf)+readChunk)
		n, err := body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return nil, &loadError{source: source, err: fmt.Errorf("%s is more than this server's limit of %d bytes per model file", source, max), invalid: true}
		}
		if n > 0 {
			progress(int64(len(buf)), size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &loadError{source: source, err: fmt.Errorf("reading %s after %d bytes: %w", source, len(buf), err)}
		}
	}
	if size >= 0 && int64(len(buf)) != size {
		return nil, &loadError{source: source, err: fmt.Errorf("%s: %w: got %d of %d bytes; download it again", source, model.ErrTruncated, len(buf), size), invalid: true}
	}
	return buf, nil
}

// netFor puts e's model on the backend once. The caller holds the device's
// turn, which is what makes the unsynchronised use of e.net safe.
func (s *Server) netFor(ctx context.Context, e *entry, m *model.Model) (engine.Net, error) {
	e.mu.Lock()
	net := e.net
	e.mu.Unlock()
	if net != nil {
		return net, nil
	}
	s.closeRetired()
	net, err := s.cfg.Backend.Load(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("loading model %q on the %s backend: %w", e.id, s.cfg.Backend.Name(), err)
	}
	e.mu.Lock()
	e.net = net
	e.mu.Unlock()
	return net, nil
}

// loadFailure maps a failed model read to an answer: 404 when the file or
// URL does not exist, 422 invalid_model when the bytes are not a valid
// model, 502 load_failed when a download failed, else 422 load_failed (a
// folder, a file the server may not read).
func loadFailure(field string, err error) *apiError {
	var le *loadError
	isLoad := errors.As(err, &le)
	var pe *privateAddrError
	switch {
	case errors.As(err, &pe):
		return &apiError{status: http.StatusForbidden, Code: "url_not_allowed", Field: field, Message: err.Error()}
	case isLoad && le.timeout:
		return &apiError{status: http.StatusGatewayTimeout, Code: "load_timeout", Field: field, Message: err.Error()}
	case errors.Is(err, safefile.ErrNotRegular):
		return &apiError{status: http.StatusUnprocessableEntity, Code: "not_a_file", Field: field, Message: err.Error()}
	case errors.Is(err, fs.ErrNotExist):
		return &apiError{status: http.StatusNotFound, Code: "source_not_found", Field: field, Message: err.Error()}
	case isLoad && le.invalid:
		return &apiError{status: http.StatusUnprocessableEntity, Code: "invalid_model", Field: field, Message: err.Error()}
	case isLoad && IsURL(le.source):
		return &apiError{status: http.StatusBadGateway, Code: "load_failed", Field: field, Message: err.Error()}
	}
	return &apiError{status: http.StatusUnprocessableEntity, Code: "load_failed", Field: field, Message: err.Error()}
}
