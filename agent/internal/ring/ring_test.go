package ring

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Against a model: the buffer always returns exactly the last size bytes written.
func TestRingMatchesModel(t *testing.T) {
	for _, size := range []int{1, 7, 4096, 10000} {
		b := New(size)
		var all []byte
		r := rand.New(rand.NewPCG(1, uint64(size)))
		for i := 0; i < 300; i++ {
			chunk := make([]byte, r.IntN(3*size+2))
			for j := range chunk {
				chunk[j] = byte(r.Uint32())
			}
			b.Write(chunk)
			all = append(all, chunk...)
			off := int64(r.IntN(len(all) + 1))
			data, start, end := b.ReadFrom(off)
			if end != int64(len(all)) {
				t.Fatalf("size %d: end %d, want %d", size, end, len(all))
			}
			wantStart := max(off, int64(len(all)-size))
			if start != min(wantStart, end) {
				t.Fatalf("size %d: start %d, want %d", size, start, wantStart)
			}
			if !bytes.Equal(data, all[start:end]) {
				t.Fatalf("size %d: data mismatch at write %d", size, i)
			}
		}
	}
}

func TestChangedFiresOnWrite(t *testing.T) {
	b := New(16)
	ch := b.Changed()
	select {
	case <-ch:
		t.Fatal("closed before a write")
	default:
	}
	b.Write([]byte("x"))
	<-ch
}
