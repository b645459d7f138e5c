package main

// This file is `remask pull`: download a model file into the per-user model
// folder (userModelsDir), so that `remask sample`, `models` and `serve` find
// it after a `go install`, with no checkout around.
//
// The download goes to NAME.safetensors.part next to the destination and is
// renamed into place only once it is complete, matches --sha256 (when given)
// and parses as a remask/1 model: a model file is either whole and valid or
// absent. An interrupted download leaves the .part behind; the same command
// resumes it with an HTTP Range request where the server supports ranges,
// and starts over where it does not.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/engine/api"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/units"
)

// maxPullBytes bounds a download: far above any char-level model, far below
// what would fill a disk by mistake.
const maxPullBytes = 8 << 30

type pullArgs struct {
	sha256 string
	name   string
	force  bool
	models string
}

func pullFlags() (*flagSet, *pullArgs) {
	a := &pullArgs{}
	fs := newFlagSet("pull", "URL [flags]",
		"Downloads a remask/1 model file (.safetensors) over http(s) into the per-user model folder,\n"+
			"$XDG_DATA_HOME/remask/models (default ~/.local/share/remask/models), where `remask sample`,\n"+
			"`remask models` and `remask serve` find it. Progress (bytes, MB/s, ETA) goes to stderr.\n"+
			"The file is kept only when it is complete, matches --sha256 (when given) and parses as a\n"+
			"remask/1 model; until then it is NAME.safetensors.part. An interrupted download is resumed\n"+
			"by running the same command again (HTTP Range; restarted where the server has no ranges).")
	fs.stringVar(&a.sha256, "sha256", "", "HEX", "expected SHA-256 of the file (64 hex digits); a mismatch deletes the download")
	fs.showDefault("sha256", "none: only the model check")
	fs.stringVar(&a.name, "name", "", "ID", "model id, saved as ID.safetensors: letters, digits, '.', '_', '-'")
	fs.showDefault("name", "the URL's file name without .safetensors")
	fs.boolVar(&a.force, "force", false, "replace a model of the same id already in the folder")
	fs.stringVar(&a.models, "models", "", "DIR", "download into this folder instead")
	fs.showDefault("models", "the per-user model folder")
	return fs, a
}

// pullCommand is `remask pull`.
func pullCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := pullFlags()
	operands, err := parseOperands(fs, args, c.stdout)
	if err != nil {
		return err
	}
	if len(operands) == 0 {
		return &usageError{msg: "missing the URL to download: remask pull URL [flags]"}
	}
	if len(operands) > 1 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q: pull takes one URL", operands[1])}
	}
	u, err := url.Parse(operands[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &usageError{msg: fmt.Sprintf("%q is not an http:// or https:// URL; pull downloads over http(s) only (copy a local file into the model folder instead)", operands[0])}
	}
	want := strings.ToLower(strings.TrimSpace(a.sha256))
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			return flagError("sha256", "%q is not a SHA-256 digest; give 64 hexadecimal digits (sha256sum prints them)", a.sha256)
		}
	}
	id := a.name
	if id == "" {
		id = strings.TrimSuffix(path.Base(u.Path), ".safetensors")
		if err := api.CheckID(id); err != nil {
			return flagError("name", "cannot take the model id from the URL (%v); pass --name ID", err)
		}
	} else if err := api.CheckID(id); err != nil {
		return flagError("name", "%v", err)
	}

	dir := a.models
	if dir == "" {
		if dir = userModelsDir(c.getenv); dir == "" {
			return &usageError{msg: "no per-user model folder: neither $XDG_DATA_HOME nor $HOME is set; set one, or pass --models DIR"}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the model folder: %w", err)
	}
	dest := filepath.Join(dir, id+".safetensors")
	if err := checkPullDest(dest, a.force); err != nil {
		return err
	}
	part := dest + ".part"

	sum, n, err := download(ctx, c, u.String(), part, id)
	if err != nil {
		return err
	}
	got := hex.EncodeToString(sum)
	if want != "" && got != want {
		os.Remove(part)
		return fmt.Errorf("%s: the download's SHA-256 is %s, not the --sha256 %s; deleted it (check the URL and the digest)", u, got, want)
	}
	m, err := model.Load(part)
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("%s is not a usable remask/1 model file, deleted it: %w", u, err)
	}
	if err := checkPullDest(dest, a.force); err != nil { // appeared while we downloaded
		return err
	}
	if err := os.Rename(part, dest); err != nil {
		return fmt.Errorf("moving the download into place: %w", err)
	}
	fmt.Fprintf(c.stderr, "Saved %s (%s, %s, sha256 %s)\n", dest, m.Config.Kind, units.Bytes(n), got)
	fmt.Fprintf(c.stdout, "%s\n", dest)
	return nil
}

// checkPullDest refuses to replace a model without --force.
func checkPullDest(dest string, force bool) error {
	st, err := os.Lstat(dest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking %s: %w", dest, err)
	case !st.Mode().IsRegular():
		return &usageError{msg: fmt.Sprintf("%s exists and is not a regular file; remove it or choose another --name", dest)}
	case !force:
		return &usageError{msg: fmt.Sprintf("%s already exists; pass --force to replace it, or --name ID to keep both", dest)}
	}
	return nil
}

// pullClient waits at most a minute for a response's headers; the body may
// take as long as it takes (progress shows it moving).
var pullClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	ResponseHeaderTimeout: time.Minute,
	TLSHandshakeTimeout:   30 * time.Second,
}}

// download fetches rawURL into part, resuming what part already holds when
// the server supports ranges, and returns the SHA-256 and size of the whole
// file.
func download(ctx context.Context, c *cli, rawURL, part, id string) ([]byte, int64, error) {
	h := sha256.New()
	var have int64
	if st, err := os.Stat(part); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := pullClient.Do(req)
	if err != nil {
		return nil, 0, pullInterrupted(ctx, err, part, have)
	}
	defer resp.Body.Close()

	var f *os.File
	total := int64(-1)
	switch {
	case have > 0 && resp.StatusCode == http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return nil, 0, fmt.Errorf("%s: the server answered the resume request with Content-Range %q, not from byte %d; delete %s and try again", rawURL, resp.Header.Get("Content-Range"), have, part)
		}
		total = size
		if f, err = os.OpenFile(part, os.O_RDWR, 0); err != nil {
			return nil, 0, err
		}
		if _, err := io.Copy(h, io.LimitReader(f, have)); err != nil { // the part already there
			f.Close()
			return nil, 0, fmt.Errorf("reading %s: %w", part, err)
		}
		fmt.Fprintf(c.stderr, "Resuming %s at %s\n", id, units.Bytes(have))
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			fmt.Fprintf(c.stderr, "The server does not resume downloads; downloading %s from the start\n", id)
		}
		have = 0
		total = resp.ContentLength
		if f, err = os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return nil, 0, err
		}
	case have > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The part is as long as the file or longer: not something to extend.
		os.Remove(part)
		return nil, 0, fmt.Errorf("%s: the server has no bytes past the %s already in %s (a different or a changed file); deleted it, run the command again to start over", rawURL, units.Bytes(have), part)
	default:
		return nil, 0, fmt.Errorf("%s: HTTP %s", rawURL, resp.Status)
	}
	defer f.Close()
	if total > maxPullBytes {
		return nil, 0, fmt.Errorf("%s is %s; pull refuses files over %s", rawURL, units.Bytes(total), units.Bytes(maxPullBytes))
	}

	p := newPullProgress(c, id, have, total)
	w := io.MultiWriter(f, h, p)
	n, err := io.Copy(w, io.LimitReader(resp.Body, maxPullBytes-have+1))
	p.finish()
	size := have + n
	if err == nil && size > maxPullBytes {
		os.Remove(part)
		return nil, 0, fmt.Errorf("%s is over %s; pull refuses it", rawURL, units.Bytes(maxPullBytes))
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return nil, 0, pullInterrupted(ctx, err, part, size)
	}
	if total >= 0 && size != total {
		return nil, 0, pullInterrupted(ctx, fmt.Errorf("the connection closed after %d of %d bytes", size, total), part, size)
	}
	return h.Sum(nil), size, nil
}

// pullInterrupted says how to go on after a download stopped half-way.
func pullInterrupted(ctx context.Context, err error, part string, have int64) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if have > 0 {
		return fmt.Errorf("download interrupted: %w; %s of it is in %s: run the same command again to resume", err, units.Bytes(have), part)
	}
	return fmt.Errorf("download failed: %w", err)
}

// parseContentRange reads "bytes START-END/SIZE" (SIZE may be "*": -1).
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		v, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || v <= end {
			return 0, 0, false
		}
		size = v
	}
	return start, size, true
}

// pullProgress prints "ID: 12.3 / 40.1 MB (31%), 5.2 MB/s, ETA 5 s" on
// stderr: redrawn in place on a terminal, a line every few seconds into a
// pipe or file.
type pullProgress struct {
	w           io.Writer
	id          string
	tty         bool
	start, last time.Time
	base, done  int64 // bytes present before this request; bytes received since
	total       int64 // -1 when the server did not say
	printed     bool
}

func newPullProgress(c *cli, id string, have, total int64) *pullProgress {
	_, _, tty := termSize(c.stderr)
	now := time.Now()
	return &pullProgress{w: c.stderr, id: id, tty: tty, start: now, last: now, base: have, total: total}
}

func (p *pullProgress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	every := 3 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now := time.Now(); now.Sub(p.last) >= every {
		p.last = now
		p.print(false)
	}
	return len(b), nil
}

func (p *pullProgress) print(final bool) {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	have := p.base + p.done
	line := fmt.Sprintf("%s: %.1f MB", p.id, float64(have)/1e6)
	if p.total > 0 {
		line += fmt.Sprintf(" / %.1f MB (%.0f%%)", float64(p.total)/1e6, 100*float64(have)/float64(p.total))
	}
	line += fmt.Sprintf(", %.1f MB/s", rate/1e6)
	switch {
	case final:
		line += fmt.Sprintf(", %.1f s", el)
	case p.total > 0 && rate > 0:
		line += fmt.Sprintf(", ETA %s", (time.Duration(float64(p.total-have)/rate) * time.Second).Round(time.Second))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.printed = true
}

func (p *pullProgress) finish() { p.print(true) }
