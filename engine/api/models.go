package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// modelList is the GET /v1/models answer.
type modelList struct {
	Models       []ModelInfo `json:"models"`
	DefaultModel string      `json:"default_model"`
	// DefaultJudge is the judge used when a request names none ("" when
	// the library has none).
	DefaultJudge string `json:"default_judge,omitempty"`
}

func (s *Server) serveModels(w http.ResponseWriter, r *http.Request) {
	list := modelList{Models: []ModelInfo{}, DefaultModel: s.cfg.DefaultModel}
	if s.lookup(s.cfg.DefaultJudge) != nil {
		list.DefaultJudge = s.cfg.DefaultJudge
	}
	for _, e := range s.snapshot() {
		list.Models = append(list.Models, s.describe(r.Context(), e))
	}
	writeJSON(w, http.StatusOK, list)
}

// describe is e's listing: from the loaded model, else from the file's
// header (read once and cached).
func (s *Server) describe(ctx context.Context, e *entry) ModelInfo {
	e.mu.Lock()
	info, loaded, loading := e.info, e.m != nil, e.loading != nil
	e.mu.Unlock()
	if info == nil && loading {
		// Being read by a load request: reading the file again here could
		// wait as long as that read (a slow download).
		return ModelInfo{ID: e.id, Source: e.source, Error: "being loaded"}
	}
	if info == nil {
		hctx, cancel := context.WithTimeout(ctx, min(s.cfg.LoadTimeout, headerTimeout))
		defer cancel()
		mi, err := ReadInfo(hctx, s.cfg.Loader, e.source)
		if err != nil {
			return ModelInfo{ID: e.id, Source: e.source, Error: err.Error()}
		}
		info = &mi
		e.mu.Lock()
		if e.info == nil {
			e.info = info
		}
		e.mu.Unlock()
	}
	mi := *info
	mi.ID, mi.Source, mi.Loaded = e.id, e.source, loaded
	return mi
}

// loadRequest is the POST /v1/models body.
type loadRequest struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	URL  string `json:"url"`
}

const loadExample = `{"path": "shakespeare.safetensors"}`

// headerTimeout bounds reading a file's header for the listing.
const headerTimeout = 10 * time.Second

type progressEvent struct {
	Event string `json:"event"`
	Bytes int64  `json:"bytes"`
	Total *int64 `json:"total,omitempty"`
}

type loadedEvent struct {
	Event string    `json:"event"`
	Model ModelInfo `json:"model"`
}

type queuedEvent struct {
	Event    string `json:"event"`
	Position int    `json:"position"`
}

// serveLoad is POST /v1/models: read a model into the library and put it on
// the backend, streaming progress as NDJSON.
func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request) {
	var req loadRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req, loadExample); e != nil {
		writeError(w, e)
		return
	}
	e, created, ae := s.loadEntry(&req)
	if ae != nil {
		writeError(w, ae)
		return
	}
	s.acquire(e)
	defer s.release(e)
	ctx := r.Context()
	st := newStream(w)
	st.writeTimeout = s.cfg.StreamWriteTimeout
	fail := func(ae *apiError) {
		if created {
			s.forget(e)
		}
		st.fail(ae)
	}
	ended := func() {
		if created {
			s.forget(e)
		}
		if ae := s.endedBy(ctx); ae != nil {
			st.fail(ae)
		}
	}

	var last int64 = -1
	progress := func(done, total int64) {
		// At the start, every 1% (every 4 MiB when the size is unknown), and at the end.
		if done == 0 || done == total || total > 0 && (done-last)*100 >= total || total < 0 && done-last >= 4<<20 {
			last = done
			ev := progressEvent{Event: "progress", Bytes: done}
			if total >= 0 {
				ev.Total = &total
			}
			st.send(ev)
		}
	}
	m, err := s.ensureModel(ctx, e, progress)
	if err != nil {
		if ctx.Err() != nil {
			ended()
			return
		}
		fail(loadFailure(req.field(), err))
		return
	}

	e.mu.Lock()
	onBackend := e.net != nil
	e.mu.Unlock()
	if onBackend {
		st.send(loadedEvent{Event: "loaded", Model: s.describe(ctx, e)})
		return
	}
	// Putting the weights on the backend uses the device: wait for the turn.
	t, err := s.queue.join()
	if err != nil {
		fail(queueFull(err))
		return
	}
	defer s.queue.leave(t)
	if err := s.queue.wait(ctx, t, func(p int) { st.send(queuedEvent{Event: "queued", Position: p}) }); err != nil {
		ended()
		return
	}
	if _, err := s.netFor(ctx, e, m); err != nil {
		fail(&apiError{status: http.StatusInternalServerError, Code: "backend_load_failed", Message: err.Error()})
		return
	}
	s.queue.leave(t)
	st.send(loadedEvent{Event: "loaded", Model: s.describe(ctx, e)})
}

func (req *loadRequest) field() string {
	if req.URL != "" {
		return "url"
	}
	if req.Path != "" {
		return "path"
	}
	return "id"
}

// loadEntry validates a load request and finds or adds its library entry.
// created is true when the entry is new (and must be forgotten if the load
// fails).
func (s *Server) loadEntry(req *loadRequest) (e *entry, created bool, ae *apiError) {
	source := ""
	switch {
	case req.Path != "" && req.URL != "":
		return nil, false, invalidOption("url", "give path or url, not both")
	case req.URL != "":
		if !IsURL(req.URL) {
			return nil, false, invalidOption("url", "%q is not an http:// or https:// URL", req.URL)
		}
		source = req.URL
	case req.Path != "":
		if IsURL(req.Path) {
			return nil, false, invalidOption("path", "%q is a URL; send it as \"url\"", req.Path)
		}
		source = req.Path
	default:
		if req.ID == "" {
			return nil, false, invalidOption("path", "give \"path\" (a file on the server), \"url\", or the \"id\" of a library model to load, e.g. %s", loadExample)
		}
		e := s.lookup(req.ID)
		if e == nil {
			return nil, false, s.unknownModel("id", req.ID)
		}
		return e, false, nil
	}
	if s.cfg.DisableLoading {
		return nil, false, &apiError{status: http.StatusForbidden, Code: "loading_disabled",
			Message: "this server does not load models by path or URL; load one of its library ids: " + strings.Join(s.knownIDs(), ", ")}
	}
	id := req.ID
	if id == "" {
		id = idFromSource(source)
		if err := CheckID(id); err != nil {
			return nil, false, invalidOption("id", "no id given, and the file name does not make one (%v); pass \"id\"", err)
		}
	} else if err := CheckID(id); err != nil {
		return nil, false, invalidOption("id", "%v", err)
	}
	if req.Path != "" && s.confine != nil {
		// Only files of the model folders; the path opened is the path checked.
		real, ae := s.confine(req.Path)
		if ae != nil {
			return nil, false, ae
		}
		source = real
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		if !sameSource(e.source, source) {
			return nil, false, &apiError{status: http.StatusConflict, Code: "id_taken", Field: "id",
				Message: fmt.Sprintf("id %q is already the model at %s; choose another id", id, e.source)}
		}
		return e, false, nil
	}
	e = &entry{id: id, source: source}
	s.entries[id] = e
	s.order = append(s.order, id)
	return e, true, nil
}

// sameSource reports whether two sources name the same file or URL.
func sameSource(a, b string) bool {
	if a == b {
		return true
	}
	if IsURL(a) || IsURL(b) {
		return false
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ra, err1 = filepath.Abs(ra)
	rb, err2 = filepath.Abs(rb)
	return err1 == nil && err2 == nil && ra == rb
}

// forget removes an entry that this request added and failed to load.
func (s *Server) forget(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[e.id] != e {
		return
	}
	delete(s.entries, e.id)
	for i, id := range s.order {
		if id == e.id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// idFromSource is the file name of source without its folder, query and
// .safetensors extension.
func idFromSource(source string) string {
	if i := strings.IndexAny(source, "?#"); i >= 0 && IsURL(source) {
		source = source[:i]
	}
	if i := strings.LastIndexAny(source, `/\`); i >= 0 {
		source = source[i+1:]
	}
	return strings.TrimSuffix(source, ".safetensors")
}

// queueFull is the 503 for a full queue.
func queueFull(err error) *apiError {
	var qf errQueueFull
	n := 0
	if errors.As(err, &qf) {
		n = qf.waiting
	}
	return &apiError{status: http.StatusServiceUnavailable, Code: "queue_full",
		Message: fmt.Sprintf("%d requests are already waiting for the device (this server's limit); retry later", n)}
}
