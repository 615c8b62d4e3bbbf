// Stream buffer size for proxied sockets. Node's default (16 KiB) makes a
// spliced bulk transfer stop and start on backpressure every few TLS records;
// a larger mark keeps both directions streaming and measurably raises
// throughput through the sidecar (bench/egress). Memory per idle connection is
// unaffected: buffers only fill while a peer is slower than the other.
export const PROXY_HIGH_WATER_MARK = 256 * 1024;
