package api

import (
	"net/http"
	"testing"
)

func TestCORS(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.AllowOrigins = []string{"https://site.example"} })
	do := func(method, origin, reqMethod string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+"/v1/health", nil)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if reqMethod != "" {
			req.Header.Set("Access-Control-Request-Method", reqMethod)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Preflight from the allowed origin.
	resp := do(http.MethodOptions, "https://site.example", "POST")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET, POST" || resp.Header.Get("Access-Control-Allow-Headers") != "Content-Type" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// A request from it carries the header.
	if resp = do(http.MethodGet, "https://site.example", ""); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" {
		t.Errorf("GET from the allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	// Another origin gets nothing; its preflight is an ordinary 405.
	if resp = do(http.MethodGet, "https://evil.example", ""); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET from another origin: %v", resp.Header)
	}
	if resp = do(http.MethodOptions, "https://evil.example", "POST"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	// Without AllowOrigins nobody gets CORS headers.
	_, plain := newTestServer(t, nil)
	req, _ := http.NewRequest(http.MethodGet, plain.URL+"/v1/health", nil)
	req.Header.Set("Origin", "https://site.example")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header without AllowOrigins: %v", r2.Header)
	}
	// "*" allows any origin (echoed back).
	_, any := newTestServer(t, func(c *Config) { c.AllowOrigins = []string{"*"} })
	req, _ = http.NewRequest(http.MethodGet, any.URL+"/v1/health", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf(`"*": %v`, r3.Header)
	}
}
