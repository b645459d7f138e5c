package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// The two clients of URL loads, made once (each keeps its idle connections).
var (
	publicOnlyClient = sync.OnceValue(func() *http.Client { return guardedClient(false) })
	anyAddrClient    = sync.OnceValue(func() *http.Client { return guardedClient(true) })
)

// privateAddrError is a URL load refused because the address dialled is
// not a public one.
type privateAddrError struct {
	addr string
}

func (e *privateAddrError) Error() string {
	return fmt.Sprintf("the URL leads to %s, which is not a public internet address; this server loads URLs from public addresses only (its operator can allow more with --allow-private-urls)", e.addr)
}

// nonPublic are the prefixes, beyond what netip's predicates cover, that a
// URL load may not reach: shared address space (CGNAT), IETF protocol
// assignments, benchmarking, the "this network" block, NAT64 and 6to4
// (which embed IPv4 addresses), documentation ranges.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// publicAddr reports whether a is a public unicast address.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// refuseNonPublic is a net.Dialer Control: it runs after name resolution,
// on the address about to be connected, so DNS tricks cannot pass it.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &privateAddrError{addr: address}
	}
	if !publicAddr(ap.Addr()) {
		return &privateAddrError{addr: ap.Addr().String()}
	}
	return nil
}

// guardedClient is the http.Client of URL loads: public addresses only
// unless allowPrivate, http(s) redirects only, at most 5 of them, and
// bounded connection and header waits (the body is bounded by the load's
// timeout). Without allowPrivate it uses no proxy, so that the address
// checked is the one of the model's server.
func guardedClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	if allowPrivate {
		tr.Proxy = http.ProxyFromEnvironment
	} else {
		d.Control = refuseNonPublic
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("a redirect to %s, which is not an http(s) URL", req.URL.Redacted())
			}
			return nil
		},
	}
}
