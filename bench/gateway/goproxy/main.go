// A floor for bench/gateway/micro.ts: Go's standard reverse proxy
// (net/http/httputil) in front of one upstream port, doing nothing else (no
// routing, auth, limits or audit). The anchor the 5,000 requests per
// core comes from is a Go router built on this proxy; measuring the bare
// proxy on the same machine, in the same run, says what that figure means here.
//
//	go run . -upstream 127.0.0.1:PORT   (prints its own port, serves until killed)
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	upstream := flag.String("upstream", "", "host:port of the upstream HTTP server")
	flag.Parse()
	if *upstream == "" {
		log.Fatal("-upstream is required")
	}
	target := &url.URL{Scheme: "http", Host: *upstream}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// One keep-alive connection per concurrent request, as the Node floors keep.
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 4096}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stdout, ln.Addr().(*net.TCPAddr).Port)
	// HTTP/1.1 and h2c with prior knowledge on one port, as the gateway's listener.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	server := &http.Server{Handler: proxy, Protocols: &protocols}
	log.Fatal(server.Serve(ln))
}
