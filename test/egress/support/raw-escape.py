#!/usr/bin/env python3
"""Packets a workload with CAP_NET_RAW (or an unprivileged UDP socket) sends to
get around the lockdown's TCP redirect. Prints one JSON line; the test counts
on the far side what actually arrived.

  tcp-syn  SRC DST PORT   raw TCP SYNs (the kernel adds the IP header)
  tcp-ack  SRC DST PORT   raw TCP ACKs carrying data, mid-stream for a flow nobody opened
  udp-raw  SRC DST PORT   raw UDP datagrams
  icmp     SRC DST        raw ICMP echo requests
  udp      SRC DST PORT   datagrams on an ordinary UDP socket (no capability needed)
"""
import json
import random
import socket
import struct
import sys

COUNT = 3
# Source ports of this run: fresh for each run, so a flow conntrack already
# tracks from an earlier run (its first packet decided its nat, e.g. a redirect
# to the sidecar) never carries this run's packets.
TCP_SPORT = random.randint(32768, 60999)
UDP_SPORT = TCP_SPORT + 1


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pseudo(src, dst, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def tcp(src, dst, port, flags, payload=b""):
    sport = TCP_SPORT
    head = struct.pack("!HHIIBBHHH", sport, port, 1000, 0 if flags == 0x02 else 5000, 5 << 4, flags, 64240, 0, 0)
    c = checksum(pseudo(src, dst, socket.IPPROTO_TCP, len(head) + len(payload)) + head + payload)
    return head[:16] + struct.pack("!H", c) + head[18:] + payload


def udp(src, dst, port, payload):
    length = 8 + len(payload)
    head = struct.pack("!HHHH", UDP_SPORT, port, length, 0)
    c = checksum(pseudo(src, dst, socket.IPPROTO_UDP, length) + head + payload) or 0xFFFF
    return head[:6] + struct.pack("!H", c) + payload


def icmp_echo(seq):
    head = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"raw-escape"
    return head[:2] + struct.pack("!H", checksum(head)) + head[4:]


def main():
    kind, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    proto = {"tcp-syn": socket.IPPROTO_TCP, "tcp-ack": socket.IPPROTO_TCP,
             "udp-raw": socket.IPPROTO_UDP, "icmp": socket.IPPROTO_ICMP}.get(kind)
    try:
        if kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    except OSError as e:
        print(json.dumps({"opened": False, "error": e.strerror}))
        return
    sent, errors = 0, []
    for i in range(COUNT):
        if kind == "tcp-syn":
            packet = tcp(src, dst, port, 0x02)
        elif kind == "tcp-ack":
            packet = tcp(src, dst, port, 0x18, b"GET / HTTP/1.0\r\n\r\n")
        elif kind == "udp-raw":
            packet = udp(src, dst, port, b"raw-escape")
        elif kind == "icmp":
            packet = icmp_echo(i)
        else:
            packet = b"udp-escape"
        try:
            s.sendto(packet, (dst, port))
            sent += 1
        except OSError as e:
            errors.append(e.strerror)
    print(json.dumps({"opened": True, "sent": sent, "errors": errors}))


main()
