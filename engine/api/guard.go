package api

import (
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Policy says which browser pages and which Host names may use a server
// that listens on a network socket. Loopback does not stop a browser: any
// page the user visits can send requests to 127.0.0.1, and with DNS
// rebinding (a name of the attacker's that resolves to 127.0.0.1) it can
// also read the answers. Guard refuses both (docs/security.md).
type Policy struct {
	// AllowOrigins are the origins ("https://host:port") whose pages may
	// call the API besides the server's own pages and pages served from a
	// loopback address; "*" allows every origin.
	AllowOrigins []string
	// AllowHosts are the Host names (without port) a request may name
	// besides the address the connection arrived on, "localhost" and
	// loopback IPs; "*" allows every name.
	AllowHosts []string
	// Log gets a warning for each refused request (nil = none).
	Log *slog.Logger
}

// refuse answers a refused request and logs it.
func (p Policy) refuse(w http.ResponseWriter, r *http.Request, ae *apiError) {
	if p.Log != nil {
		p.Log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "status", ae.status, "code", ae.Code,
			"host", r.Host, "origin", r.Header.Get("Origin"), "content_type", r.Header.Get("Content-Type"))
	}
	writeError(w, ae)
}

// Guard wraps an API handler with Policy: a request whose Host is not
// allowed gets 403 host_not_allowed, one whose Origin is not allowed 403
// origin_not_allowed, and a request with a body whose Content-Type is not
// application/json 415 unsupported_media_type (so that a browser must send
// a CORS preflight, which only allowed origins pass). Allowed origins get
// CORS headers and their preflights are answered here. Nothing reaches
// next for a refused request.
func Guard(p Policy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ae := p.checkHost(r); ae != nil {
			p.refuse(w, r, ae)
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !p.originAllowed(r, origin) {
				p.refuse(w, r, &apiError{status: http.StatusForbidden, Code: "origin_not_allowed",
					Message: fmt.Sprintf("pages from %s may not use this server; its operator can allow them with --allow-origin %s (or $REMASK_ORIGINS)", quoteOrigin(origin), quoteOrigin(origin))})
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Retry-After, Allow")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			ct := r.Header.Get("Content-Type")
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || mt != "application/json" {
				got := "none"
				if ct != "" {
					got = fmt.Sprintf("%q", ct)
				}
				p.refuse(w, r, &apiError{status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
					Message: fmt.Sprintf("the body must be sent with Content-Type: application/json (got %s); with curl add -H 'Content-Type: application/json'", got)})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// HostGuard applies only Policy's Host check: for the static site, whose
// files are public but which must not answer under a rebound name either.
func HostGuard(p Policy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ae := p.checkHost(r); ae != nil {
			p.refuse(w, r, ae)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host header that is not the connection's own address,
// a loopback name or IP, or an allowed host.
func (p Policy) checkHost(r *http.Request) *apiError {
	host := hostOnly(r.Host)
	if p.hostAllowed(r, host) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, Code: "host_not_allowed",
		Message: fmt.Sprintf("this server does not answer to the name %q (a DNS rebinding guard); use its address or localhost, or start it with --allow-host %s (or $REMASK_HOSTS)", host, host)}
}

func (p Policy) hostAllowed(r *http.Request, host string) bool {
	if host == "" {
		return false
	}
	if isLoopbackName(host) {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		// The address the connection arrived on: a rebound name is always a
		// name, never this IP literal.
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ta, ok := la.(*net.TCPAddr); ok && ta.IP.Equal(ip) {
				return true
			}
		}
	}
	return slices.ContainsFunc(p.AllowHosts, func(h string) bool { return h == "*" || strings.EqualFold(hostOnly(h), host) })
}

// originAllowed: the server's own origin, a loopback origin, or one allowed.
func (p Policy) originAllowed(r *http.Request, origin string) bool {
	if slices.ContainsFunc(p.AllowOrigins, func(o string) bool {
		return o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	}) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // "null" (sandboxed frames, file:) and anything odd
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true // same origin: the page came from this server
	}
	h := u.Hostname()
	if isLoopbackName(h) {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackName: localhost and its subdomains, which browsers resolve to
// loopback without asking DNS.
func isLoopbackName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// hostOnly strips the port (and the brackets of an IPv6 literal).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// quoteOrigin shows an origin in a message without control characters.
func quoteOrigin(o string) string {
	q := fmt.Sprintf("%q", o)
	return q[1 : len(q)-1]
}
