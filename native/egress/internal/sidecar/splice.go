package sidecar

import (
	"io"
	"net"
	"sync"
)

// splice joins two connections both ways until both directions are done or
// either fails. Half-close is forwarded (a client that shuts its write side
// still gets the whole response). Between two TCP sockets io.Copy moves the
// bytes with splice(2), without copying them through the process.
// clientReader carries bytes already read from client (a buffered reader).
func splice(client net.Conn, clientReader io.Reader, upstream net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst net.Conn, src io.Reader, srcConn net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil {
			// A failed direction ends both: closing unblocks the other copy.
			client.Close()
			upstream.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go pipe(upstream, clientReader, client)
	go pipe(client, upstream, upstream)
	wg.Wait()
	client.Close()
	upstream.Close()
}
