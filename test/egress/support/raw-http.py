#!/usr/bin/env python3
"""Send raw bytes (argv[3], with \\r\\n written as-is in the argument) to
HOST:PORT as one write, read until the peer closes or goes quiet, and print the
status lines of every response as one JSON line. The workload's HTTP client for
requests curl will not send (two Host headers, absolute-form, pipelining)."""
import json
import re
import socket
import sys

host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape")
sock = socket.create_connection((host, port), timeout=3)
sock.sendall(payload.encode("latin1"))
data = b""
try:
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
text = data.decode("latin1")
print(json.dumps({
    "statuses": [int(s) for s in re.findall(r"^HTTP/1\.[01] (\d{3})", text, re.M)],
    "bodies": re.findall(r"^\{.*\}$", text, re.M),
    "text": text[-2000:],
}))
