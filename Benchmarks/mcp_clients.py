#!/usr/bin/env python3
"""Session-era (2025-11-25) client driver for scripts/bench. Standard library only.

  mcp_clients.py sessions URL N [--out FILE] [--workers 8]
      runs initialize + notifications/initialized N times, writes the Mcp-Session-Ids
      (one a line) to FILE or stdout, and leaves the sessions idle on the server.
  mcp_clients.py streams URL SESSIONS_FILE N [--hold-file FILE] [--timeout 600]
      opens N GET streams (Accept: text/event-stream) on the first N sessions of
      SESSIONS_FILE, prints how many opened, then holds them until HOLD_FILE exists (or
      the timeout passes), then closes them.

Failures are counted and printed on stderr as one summary line; the exit code is 1 if any
session or stream failed.
"""
import argparse
import asyncio
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

PROTOCOL = "2025-11-25"


def initialize_body(n):
    return json.dumps({
        "jsonrpc": "2.0", "id": n, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "gatehouse-bench", "version": "1.0"},
        },
    }, separators=(",", ":")).encode()


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def create_sessions(url, count, workers):
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path + (("?" + parsed.query) if parsed.query else "")
    ids = [None] * count
    errors = []
    next_index = [0]
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        while True:
            with lock:
                i = next_index[0]
                if i >= count:
                    break
                next_index[0] += 1
            try:
                conn.request("POST", path, body=initialize_body(i + 1), headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                })
                response = conn.getresponse()
                body = response.read()
                sid = response.getheader("Mcp-Session-Id")
                if response.status != 200 or not sid or b'"result"' not in body:
                    raise RuntimeError(f"initialize: HTTP {response.status} {body[:200]!r}")
                conn.request("POST", path, body=INITIALIZED, headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    "Mcp-Session-Id": sid,
                    "MCP-Protocol-Version": PROTOCOL,
                })
                response = conn.getresponse()
                response.read()
                if response.status != 202:
                    raise RuntimeError(f"notifications/initialized: HTTP {response.status}")
                ids[i] = sid
            except Exception as error:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(error))
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(workers, count)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [sid for sid in ids if sid], errors


async def open_stream(host, port, path, sid):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        f"Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: {PROTOCOL}\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status = head.split(b"\r\n", 1)[0]
    if b" 200" not in status or b"text/event-stream" not in head.lower():
        writer.close()
        raise RuntimeError(f"GET stream: {status.decode(errors='replace')}")
    return reader, writer


async def hold_streams(url, sids, hold_file, timeout):
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path
    errors = []
    streams = []
    sem = asyncio.Semaphore(64)

    async def one(sid):
        async with sem:
            try:
                streams.append(await open_stream(parsed.hostname, parsed.port, path, sid))
            except Exception as error:  # noqa: BLE001
                errors.append(str(error))

    await asyncio.gather(*(one(sid) for sid in sids))
    print(f"open={len(streams)} failed={len(errors)}", flush=True)
    if errors:
        print(f"first error: {errors[0]}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (hold_file and os.path.exists(hold_file)):
        await asyncio.sleep(0.1)
    # Streams that ended early (the server closed them) count as failures too.
    closed_early = sum(1 for reader, _ in streams if reader.at_eof())
    for _, writer in streams:
        writer.close()
    print(f"closed_early={closed_early}", flush=True)
    return len(errors) + closed_early


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sessions")
    s.add_argument("url")
    s.add_argument("count", type=int)
    s.add_argument("--out")
    s.add_argument("--workers", type=int, default=8)
    g = sub.add_parser("streams")
    g.add_argument("url")
    g.add_argument("sessions_file")
    g.add_argument("count", type=int)
    g.add_argument("--hold-file")
    g.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    if args.command == "sessions":
        started = time.monotonic()
        ids, errors = create_sessions(args.url, args.count, args.workers)
        elapsed = time.monotonic() - started
        out = open(args.out, "w") if args.out else sys.stdout
        out.write("".join(sid + "\n" for sid in ids))
        if args.out:
            out.close()
        print(f"sessions created={len(ids)} failed={len(errors)} seconds={elapsed:.2f}", file=sys.stderr, flush=True)
        if errors:
            print(f"first error: {errors[0]}", file=sys.stderr, flush=True)
        sys.exit(1 if errors else 0)
    else:
        sids = [line.strip() for line in open(args.sessions_file) if line.strip()][: args.count]
        if len(sids) < args.count:
            print(f"only {len(sids)} sessions in {args.sessions_file}", file=sys.stderr)
        failed = asyncio.run(hold_streams(args.url, sids, args.hold_file, args.timeout))
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
