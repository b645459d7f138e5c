package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Defect 1 of issue 11: any web page could drive the server (a "simple"
// cross-origin POST with text/plain needs no preflight), and with DNS
// rebinding (Host: attacker.example) read the answers. Every refused
// request must change nothing.
func TestGuardRefusesCrossOriginAndRebinding(t *testing.T) {
	s := New(testConfig())
	ts := httptest.NewServer(Guard(Policy{}, s))
	defer ts.Close()
	open := httptest.NewServer(Guard(Policy{AllowOrigins: []string{"https://site.example"}, AllowHosts: []string{"remask.lan"}}, New(testConfig())))
	defer open.Close()
	star := httptest.NewServer(Guard(Policy{AllowOrigins: []string{"*"}, AllowHosts: []string{"*"}}, New(testConfig())))
	defer star.Close()
	self := strings.TrimPrefix(ts.URL, "http://")
	load := `{"path":"lm_nopos_f16.safetensors"}`

	cases := []struct {
		name                         string
		srv                          *httptest.Server
		method, path, host, origin   string
		ctype, body, reqMethod, want string // want: status code/error code
		acao                         string // the expected Access-Control-Allow-Origin
	}{
		{"plain GET", ts, "GET", "/v1/health", "", "", "", "", "", "200", ""},
		{"rebound Host", ts, "GET", "/v1/health", "attacker.example", "", "", "", "", "403 host_not_allowed", ""},
		{"rebound Host with port", ts, "GET", "/v1/models", "attacker.example:8080", "", "", "", "", "403 host_not_allowed", ""},
		{"rebound Host POST", ts, "POST", "/v1/models", "attacker.example", "", "application/json", load, "", "403 host_not_allowed", ""},
		{"Host localhost", ts, "GET", "/v1/health", "localhost:1234", "", "", "", "", "200", ""},
		{"Host app.localhost", ts, "GET", "/v1/health", "app.localhost", "", "", "", "", "200", ""},
		{"Host [::1]", ts, "GET", "/v1/health", "[::1]:8080", "", "", "", "", "200", ""},
		{"Host 127.0.0.2", ts, "GET", "/v1/health", "127.0.0.2", "", "", "", "", "200", ""},
		{"Host another IP", ts, "GET", "/v1/health", "10.1.2.3", "", "", "", "", "403 host_not_allowed", ""},
		{"allowed Host", open, "GET", "/v1/health", "remask.lan:8080", "", "", "", "", "200", ""},
		{"any Host", star, "GET", "/v1/health", "whatever.example", "", "", "", "", "200", ""},
		{"simple cross-origin POST", ts, "POST", "/v1/models", "", "https://evil.example", "text/plain", load, "", "403 origin_not_allowed", ""},
		{"cross-origin JSON POST", ts, "POST", "/v1/models", "", "https://evil.example", "application/json", load, "", "403 origin_not_allowed", ""},
		{"cross-origin GET", ts, "GET", "/v1/models", "", "https://evil.example", "", "", "", "403 origin_not_allowed", ""},
		{"cross-origin preflight", ts, "OPTIONS", "/v1/generate", "", "https://evil.example", "", "", "POST", "403 origin_not_allowed", ""},
		{"origin null", ts, "POST", "/v1/generate", "", "null", "application/json", `{}`, "", "403 origin_not_allowed", ""},
		{"look-alike origin", ts, "GET", "/v1/health", "", "http://127.0.0.1.evil.example", "", "", "", "403 origin_not_allowed", ""},
		{"same origin", ts, "GET", "/v1/health", "", "http://" + self, "", "", "", "200", "http://" + self},
		{"loopback origin", ts, "GET", "/v1/health", "", "http://localhost:3000", "", "", "", "200", "http://localhost:3000"},
		{"loopback IP origin", ts, "GET", "/v1/health", "", "http://127.0.0.1:5173", "", "", "", "200", "http://127.0.0.1:5173"},
		{"allowed origin", open, "GET", "/v1/health", "", "https://site.example", "", "", "", "200", "https://site.example"},
		{"allowed origin preflight", open, "OPTIONS", "/v1/generate", "", "https://site.example", "", "", "POST", "204", "https://site.example"},
		{"other origin on open server", open, "GET", "/v1/health", "", "https://evil.example", "", "", "", "403 origin_not_allowed", ""},
		{"any origin", star, "GET", "/v1/health", "", "https://evil.example", "", "", "", "200", "https://evil.example"},
		{"POST text/plain", ts, "POST", "/v1/models", "", "", "text/plain", load, "", "415 unsupported_media_type", ""},
		{"POST form", ts, "POST", "/v1/generate", "", "", "application/x-www-form-urlencoded", `{}`, "", "415 unsupported_media_type", ""},
		{"POST no type", ts, "POST", "/v1/generate", "", "", "", `{}`, "", "415 unsupported_media_type", ""},
		{"POST multipart", ts, "POST", "/v1/models", "", "", "multipart/form-data; boundary=x", load, "", "415 unsupported_media_type", ""},
		{"POST JSON with charset", ts, "POST", "/v1/generate", "", "", "application/json; charset=utf-8", `{` + small + `,"seed":1}`, "", "200", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.reqMethod != "" {
				req.Header.Set("Access-Control-Request-Method", tc.reqMethod)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := strings.Fields(resp.Status)[0]
			if resp.StatusCode >= 400 {
				got += " " + errorOf(t, data).Code
			}
			if got != tc.want {
				t.Errorf("got %s, want %s: %s", got, tc.want, data)
			}
			if a := resp.Header.Get("Access-Control-Allow-Origin"); a != tc.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", a, tc.acao)
			}
		})
	}
	// Nothing the refused requests asked for happened: the library of the
	// guarded server still has its four models, none loaded but the one the
	// allowed JSON POST generated with.
	plain := httptest.NewServer(s)
	defer plain.Close()
	_, data := do(t, plain, http.MethodGet, "/v1/models", "")
	var l modelList
	if err := jsonUnmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, m := range l.Models {
		if m.Loaded {
			loaded = append(loaded, m.ID)
		}
	}
	if len(l.Models) != 4 || strings.Join(loaded, ",") != "lm,judge" {
		t.Errorf("after the refused requests: %d models, loaded %v", len(l.Models), loaded)
	}
}

// The static site gets the Host check only.
func TestHostGuard(t *testing.T) {
	h := HostGuard(Policy{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "site") }))
	for host, want := range map[string]int{"127.0.0.1:80": 200, "localhost": 200, "evil.example": 403} {
		req := httptest.NewRequest("GET", "/index.html", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}
