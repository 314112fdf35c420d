#!/usr/bin/env python3
"""Issue throughput against one or more iamlease servers: N credential requests with C in
flight, spread round-robin over the servers and over the mounts; prints issues per second.

usage: load.py --servers URL[,URL…] --mounts M[,M…] --token T [-n 600] [-c 16] [--ttl 1h]

With --until-killed, failures are not fatal: it keeps issuing until it is killed (the
takeover benchmark kills the replica it loads).
"""
import argparse
import concurrent.futures
import itertools
import json
import sys
import time
import urllib.request


def issue(server, mount, token, ttl="1h"):
    req = urllib.request.Request(
        f"{server}/v1/{mount}/creds/bench", data=json.dumps({"ttl": ttl}).encode(), method="POST",
        headers={"X-Vault-Token": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.load(r)
    assert body["data"]["secret_key"], body


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--servers", required=True)
    p.add_argument("--mounts", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("-n", type=int, default=600)
    p.add_argument("-c", type=int, default=16)
    p.add_argument("--ttl", default="1h")
    p.add_argument("--until-killed", action="store_true")
    a = p.parse_args()
    if a.until_killed:
        def forever(i):
            while True:
                s, m = targets[i % len(targets)]
                try:
                    issue(s, m, a.token, a.ttl)
                except Exception:
                    time.sleep(0.1)
        targets = list(itertools.product(a.servers.split(","), a.mounts.split(",")))
        with concurrent.futures.ThreadPoolExecutor(a.c) as pool:
            for i in range(a.c):
                pool.submit(forever, i)
        return
    targets = list(itertools.product(a.servers.split(","), a.mounts.split(",")))
    jobs = [targets[i % len(targets)] for i in range(a.n)]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(a.c) as pool:
        for f in [pool.submit(issue, s, m, a.token, a.ttl) for s, m in jobs]:
            f.result()
    took = time.monotonic() - start
    print(f"{a.n} issues in {took:.2f}s = {a.n / took:.1f}/s", file=sys.stderr)
    print(f"{a.n / took:.1f}")


if __name__ == "__main__":
    main()
