#!/usr/bin/env python3
"""The busy child of bench/procserv.sh: writes 100-byte lines to its stdout (the process
server's pseudo-terminal) at a paced rate, and keeps the number of bytes written so far in
COUNT_FILE (updated every 0.1 s), so that the bench can measure the rate achieved.
Usage: procserv_writer.py BYTES_PER_SECOND COUNT_FILE"""
import os
import sys
import time

rate = float(sys.argv[1])
count_fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
LINE = 100
# 1000 numbered lines, reused: "0000000123 xxx...x\n"
block = b"".join(b"%010d %s\n" % (i, b"x" * (LINE - 12)) for i in range(1000))
assert len(block) == 1000 * LINE
CHUNK = 16 * 1024  # at most this much per write(), so that pacing stays smooth
written = 0
start = time.monotonic()
next_count = start
pos = 0
while True:
    now = time.monotonic()
    due = int((now - start) * rate) - written
    while due > 0:
        n = min(due, CHUNK, len(block) - pos)
        n = os.write(1, block[pos:pos + n])
        written += n
        due -= n
        pos = (pos + n) % len(block)
    if now >= next_count:
        os.pwrite(count_fd, b"%20d\n" % written, 0)
        next_count = now + 0.1
    time.sleep(0.002)
