package sidecar

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Resolver resolves allowed names to IPv4 addresses through the upstream the
// DNS proxy forwards to. Answers are cached for their TTL (capped), so a burst
// of connections to one name costs one query; the address check runs on every
// connection regardless, so caching never skips the rebinding defense. IPv4
// only: the lockdown closes IPv6.
type Resolver struct {
	upstream Upstream
	maxTTL   time.Duration
	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*lookup
}

type cached struct {
	addrs   []string
	expires time.Time
}

type lookup struct {
	done  chan struct{}
	addrs []string
	err   error
}

func NewResolver(u Upstream) *Resolver {
	return &Resolver{upstream: u, maxTTL: 30 * time.Second, cache: map[string]cached{}, inflight: map[string]*lookup{}}
}

// ErrNotFound is a name without A records (NXDOMAIN or no data).
var ErrNotFound = errors.New("ENOTFOUND")

func (r *Resolver) Resolve(name string) ([]string, error) {
	r.mu.Lock()
	if hit, ok := r.cache[name]; ok && hit.expires.After(time.Now()) {
		r.mu.Unlock()
		return hit.addrs, nil
	}
	l, ok := r.inflight[name]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		r.inflight[name] = l
		go r.run(name, l)
	}
	r.mu.Unlock()
	<-l.done
	return l.addrs, l.err
}

func (r *Resolver) run(name string, l *lookup) {
	addrs, ttl, err := r.query(name)
	r.mu.Lock()
	delete(r.inflight, name)
	if err == nil && ttl > 0 {
		if len(r.cache) >= 10_000 {
			for k := range r.cache {
				delete(r.cache, k)
				break
			}
		}
		r.cache[name] = cached{addrs, time.Now().Add(ttl)}
	}
	r.mu.Unlock()
	l.addrs, l.err = addrs, err
	close(l.done)
}

func (r *Resolver) query(name string) ([]string, time.Duration, error) {
	qname, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, 0, err
	}
	answer, err := r.upstream.Ask(dnsmessage.Question{Name: qname, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}, false, false)
	if err != nil {
		return nil, 0, err
	}
	var p dnsmessage.Parser
	h, err := p.Start(answer)
	if err != nil {
		return nil, 0, err
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		if h.RCode == dnsmessage.RCodeNameError {
			return nil, 0, ErrNotFound
		}
		return nil, 0, errors.New(h.RCode.String())
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, 0, err
	}
	ttl := r.maxTTL
	var addrs []string
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if rh.Type != dnsmessage.TypeA {
			if err := p.SkipAnswer(); err != nil {
				return nil, 0, err
			}
			continue
		}
		a, err := p.AResource()
		if err != nil {
			return nil, 0, err
		}
		addrs = append(addrs, dnsAddr(a.A))
		ttl = min(ttl, time.Duration(rh.TTL)*time.Second)
	}
	if len(addrs) == 0 {
		return nil, 0, ErrNotFound
	}
	return addrs, ttl, nil
}

func dnsAddr(a [4]byte) string {
	return itoa(a[0]) + "." + itoa(a[1]) + "." + itoa(a[2]) + "." + itoa(a[3])
}

func itoa(b byte) string {
	const digits = "0123456789"
	if b < 10 {
		return digits[b : b+1]
	}
	if b < 100 {
		return string([]byte{digits[b/10], digits[b%10]})
	}
	return string([]byte{digits[b/100], digits[b/10%10], digits[b%10]})
}
