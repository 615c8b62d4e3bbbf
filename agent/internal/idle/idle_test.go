package idle

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestReleasesOnlyOnceQuiet(t *testing.T) {
	var released atomic.Int32
	block := make(chan struct{})
	h := HandlerFunc(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-block
		}
	}), 50*time.Millisecond, func() { released.Add(1) })
	srv := httptest.NewServer(h)
	defer srv.Close()

	done := make(chan struct{})
	go func() {
		http.Get(srv.URL + "/slow")
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	http.Get(srv.URL + "/fast") // ends while /slow is still in flight
	time.Sleep(150 * time.Millisecond)
	if n := released.Load(); n != 0 {
		t.Fatalf("released %d times while a request was in flight", n)
	}
	close(block)
	<-done
	time.Sleep(150 * time.Millisecond)
	if n := released.Load(); n != 1 {
		t.Fatalf("released %d times after going quiet, want 1", n)
	}
}
