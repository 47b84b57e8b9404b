#!/usr/bin/env python3
"""Heartbeat load: AGENTS simulated agents, each on its own HTTP/1.1 keep-alive connection,
each POSTing one heartbeat a second to `wharf serve` for SECONDS seconds. Starts are spread
over the first second (random offset per agent), so the load is steady, not a burst.

Standard library only (asyncio, raw sockets). Prints a human summary and, last, one JSON line.
Latency is from writing the request to reading the whole answer, as this event loop sees it:
it includes the generator's own scheduling delay when its single core is busy.

Usage: heartbeat_load.py --url http://127.0.0.1:8080 --agents 1000 --seconds 60
                         (--token T | --tokens FILE)   FILE: lines "FEC TOKEN"
"""
import argparse
import asyncio
import json
import math
import random
import resource
import sys
import time
from urllib.parse import urlsplit


class Stats:
    def __init__(self):
        self.latencies = []      # seconds, successful requests
        self.errors = 0
        self.error_samples = {}  # message -> count
        self.statuses = {}
        self.reconnects = 0
        self.late = 0            # sends more than 100 ms after their slot
        self.max_lag = 0.0

    def error(self, message):
        self.errors += 1
        self.error_samples[message] = self.error_samples.get(message, 0) + 1


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            raise RuntimeError("chunked answers not handled")
    body = await reader.readexactly(length) if length else b""
    return status, body, close


async def agent(index, fec, token, host, port, t0, seconds, stats, timeout):
    body = json.dumps({"generation": 1, "services": [{"name": "ioc", "state": "up"},
                                                     {"name": "fesa", "state": "up"}],
                       "error": "", "agent_version": "0.1.0"}).encode()
    request = (f"POST /api/v1/fecs/{fec}/heartbeat HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               f"User-Agent: wharf-agent/0.1 (heartbeat_load)\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    offset = random.random()
    reader = writer = None
    end = t0 + seconds
    k = 0
    loop = asyncio.get_running_loop()
    while True:
        slot = t0 + offset + k
        if slot >= end:
            break
        k += 1
        now = loop.time()
        if slot > now:
            await asyncio.sleep(slot - now)
        lag = loop.time() - slot
        if lag > 0.1:
            stats.late += 1
        stats.max_lag = max(stats.max_lag, lag)
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                if k > 1:
                    stats.reconnects += 1
            start = time.perf_counter()
            writer.write(request)
            status, answer, close = await asyncio.wait_for(read_response(reader), timeout)
            latency = time.perf_counter() - start
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 200:
                stats.latencies.append(latency)
            else:
                stats.error(f"HTTP {status}: {answer[:200].decode(errors='replace').strip()}")
            if close:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                RuntimeError) as e:
            stats.error(f"{type(e).__name__}: {e}"[:200])
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[i]


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--token", help="one token for every simulated agent (admin)")
    ap.add_argument("--tokens", help='file of "FEC TOKEN" lines, one per simulated agent')
    ap.add_argument("--fec-format", default="fec{:04d}", help="FEC names with --token")
    ap.add_argument("--timeout", type=float, default=10, help="seconds before a request counts as failed")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    random.seed(args.seed)
    parts = urlsplit(args.url)
    host, port = parts.hostname, parts.port or 80
    if args.tokens:
        pairs = [line.split() for line in open(args.tokens) if line.strip()][:args.agents]
        if len(pairs) < args.agents:
            sys.exit(f"{args.tokens} has {len(pairs)} tokens, fewer than --agents {args.agents}")
    elif args.token:
        pairs = [(args.fec_format.format(i), args.token) for i in range(1, args.agents + 1)]
    else:
        sys.exit("give --token or --tokens")

    stats = Stats()
    loop = asyncio.get_running_loop()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = loop.time() + 1.0  # one second to start the tasks; connections open at each first slot
    wall0 = time.monotonic()
    await asyncio.gather(*(agent(i, fec, token, host, port, t0, args.seconds, stats, args.timeout)
                           for i, (fec, token) in enumerate(pairs)))
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)

    lat = sorted(stats.latencies)
    done = len(lat) + stats.errors
    ms = lambda v: round(v * 1000, 2)
    result = {
        "agents": args.agents, "seconds": args.seconds, "requests": done, "ok": len(lat),
        "errors": stats.errors, "rate_per_s": round(done / args.seconds, 1),
        "p50_ms": ms(percentile(lat, 50)), "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)), "p999_ms": ms(percentile(lat, 99.9)),
        "max_ms": ms(lat[-1]) if lat else None, "mean_ms": ms(sum(lat) / len(lat)) if lat else None,
        "reconnects": stats.reconnects, "late_sends": stats.late, "max_send_lag_ms": ms(stats.max_lag),
        "statuses": stats.statuses, "generator_cpu_s": round(cpu, 1),
        "generator_cpu_pct_of_one_core": round(100 * cpu / wall, 1), "wall_s": round(wall, 1),
        "error_samples": dict(sorted(stats.error_samples.items(), key=lambda kv: -kv[1])[:5]),
    }
    print(f"requests {done} ({result['rate_per_s']}/s), ok {len(lat)}, errors {stats.errors}, "
          f"reconnects {stats.reconnects}")
    print(f"latency ms: p50 {result['p50_ms']}, p90 {result['p90_ms']}, p99 {result['p99_ms']}, "
          f"p99.9 {result['p999_ms']}, max {result['max_ms']}")
    print(f"sends later than their slot by >100 ms: {stats.late} (max lag {result['max_send_lag_ms']} ms)")
    print(f"generator CPU: {result['generator_cpu_s']} s in {result['wall_s']} s "
          f"({result['generator_cpu_pct_of_one_core']}% of one core)")
    for message, count in result["error_samples"].items():
        print(f"error x{count}: {message}")
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
