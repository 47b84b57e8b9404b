#!/usr/bin/env python3
"""The console client of bench/procserv.sh: connects to a UNIX console socket (wharf's or
procServ's), reads everything and never writes (no answer to procServ's telnet options),
and keeps the number of bytes received so far in COUNT_FILE (updated every 0.1 s).
Usage: procserv_client.py SOCKET COUNT_FILE"""
import os
import selectors
import socket
import sys
import time

sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
count_fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
buf = bytearray(1 << 18)
received = 0
next_count = 0.0
sel = selectors.DefaultSelector()
sel.register(sock, selectors.EVENT_READ)
while True:
    if sel.select(0.1):
        n = sock.recv_into(buf)
        if n == 0:
            break
        received += n
    now = time.monotonic()
    if now >= next_count:
        os.pwrite(count_fd, b"%20d\n" % received, 0)
        next_count = now + 0.1
os.pwrite(count_fd, b"%20d\n" % received, 0)
