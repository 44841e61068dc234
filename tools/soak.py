#!/usr/bin/env python3
"""Soak test: shieldd under a bounded mixed load for N seconds (make soak SOAK_SECONDS=N).

The daemon (the tiny random Gemma 2 model of the tests, the real Gemma tokenizer, a copy of
policies/) serves a Unix socket and a TCP port while worker threads send, at random:
valid single and batch classifications and moderations (a small pool of texts, so the result
cache hits, and fresh texts, so it misses), invalid requests (bad JSON, an unknown policy, a
wrong method, no such endpoint, no Host), slow clients (a request in pieces, within
read_timeout), clients that leave (half a request then a close; a whole request then a reset),
and pipelined requests. Every few seconds the policies are reloaded with SIGHUP.

It samples the daemon's RSS, open descriptors and threads after a warm-up (the start), at the
middle and at the end, and the latency percentiles of valid single classifications in the first
and last quarter of the run. It fails (exit 1) on:
  - any status a request did not ask for (each kind lists the statuses it may get);
  - the daemon dying, or not exiting 0 on SIGTERM at the end;
  - RSS growth from start to end over cache_bytes + RSS_OVERHEAD (the cache fills up to its
    budget, plus allocator slack), or from middle to end over RSS_PLATEAU once the cache is
    full (growth must stop: a leak keeps growing);
  - more open descriptors at the end than at the start + FD_SLACK (connections still closing),
    or a different number of threads.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)

RSS_OVERHEAD = 24 << 20  # allocator slack and per-connection buffers above the cache budget
RSS_PLATEAU = 8 << 20    # growth allowed over the second half, once the cache is full
FD_SLACK = 4
TEXT_POOL = ["pool text %d: how do I bake bread with my kids on a rainy afternoon" % i
             for i in range(40)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_stats(pid):
    """(RSS bytes, open fds, threads) of a live process."""
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid)), threads


def statuses(data):
    """The statuses of the responses in raw bytes (Content-Length framing)."""
    out = []
    while data.startswith(b"HTTP/1.1 "):
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        out.append(int(lines[0].split()[1]))
        n = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        data = rest[n:]
    return out


def percentiles(xs):
    if not xs:
        return {"n": 0}
    xs = sorted(xs)
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return {"n": len(xs), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "max": xs[-1]}


class Soak:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="shieldd-soak-")
        self.sock = os.path.join(self.tmp, "s.sock")
        self.port = free_port()
        self.lock = threading.Lock()
        self.counts = {}      # kind -> {status: n}
        self.unexpected = []  # (kind, status or error)
        self.lat = []         # (time, seconds) of valid single classifications
        self.stop = threading.Event()
        self.t0 = 0.0
        self.n_hup = 0

    # ---- daemon --------------------------------------------------------------------------
    def start(self):
        a = self.args
        model = os.path.join(self.tmp, "model")
        tok = os.path.join(TOP, ".cache", "npm", "node_modules", "@lenml", "tokenizer-gemini",
                           "models", "tokenizer.json")
        subprocess.run([os.path.join(a.build, "tools", "mkmodel"), "--preset", "tiny", "--dtype",
                        "bf16", "--seed", "7", "--tokenizer", tok, "--out", model, "--quiet"],
                       check=True, timeout=300)
        self.pol = os.path.join(self.tmp, "policies")
        shutil.copytree(os.path.join(TOP, "policies"), self.pol)
        self.log = open(os.path.join(self.tmp, "shieldd.log"), "w+b")
        cmd = [a.shieldd, "-d", "-m", model, "-p", self.pol, "--listen", "unix:" + self.sock,
               "--listen", "tcp:127.0.0.1:%d" % self.port, "--read-timeout", "3s",
               "--idle-timeout", "5s", "--cache-bytes", str(a.cache_bytes), "--threads", "1"]
        if not a.cache:
            cmd.append("--no-cache")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("soak: shieldd exited %d at start:\n%s" % (
                    self.proc.returncode, self.daemon_log()))
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("soak: shieldd did not come up")

    def daemon_log(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def request(self, method, path, body=None, unix=False, headers=None):
        if unix:
            c = http.client.HTTPConnection("localhost", timeout=60)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(60)
            s.connect(self.sock)
            c.sock = s
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def raw(self, data, close_early=False, reset=False, pieces=1, wait=20):
        """Send raw bytes (in `pieces` with pauses), read to close; the statuses seen."""
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(wait)
        try:
            step = max(1, len(data) // pieces)
            for i in range(0, len(data), step):
                s.sendall(data[i:i + step])
                if pieces > 1:
                    time.sleep(0.05)
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return []
            if close_early:
                return []
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return statuses(out)
        finally:
            s.close()

    # ---- load ----------------------------------------------------------------------------
    def note(self, kind, status, allowed):
        with self.lock:
            self.counts.setdefault(kind, {})
            self.counts[kind][status] = self.counts[kind].get(status, 0) + 1
            if status not in allowed:
                self.unexpected.append((kind, status))

    def one(self, rng):
        k = rng.random()
        text = rng.choice(TEXT_POOL) if rng.random() < 0.6 else "fresh %d %f" % (
            rng.getrandbits(40), rng.random())
        ok = (200, 503)  # 503: the queue is full under the load; never anything else
        if k < 0.35:
            t0 = time.time()
            st, _ = self.request("POST", "/v1/classify", {"text": text}, unix=rng.random() < 0.5)
            if st == 200:
                with self.lock:
                    self.lat.append((t0 - self.t0, time.time() - t0))
            self.note("classify", st, ok)
        elif k < 0.45:
            st, _ = self.request("POST", "/v1/classify",
                                 {"inputs": [{"text": text + str(i)} for i in range(4)]})
            self.note("batch", st, ok)
        elif k < 0.52:
            st, _ = self.request("POST", "/v1/moderations", {"input": [text, "second " + text]})
            self.note("moderations", st, ok)
        elif k < 0.62:
            bad = rng.choice([(b"{not json", 400), (json.dumps({"text": text, "policies":
                                                                 ["nope"]}).encode(), 400),
                              (b'{"text": 5}', 400), (b"", 400)])
            st, _ = self.request("POST", "/v1/classify", bad[0],
                                 headers={"Content-Type": "application/json"})
            self.note("invalid", st, (bad[1],))
        elif k < 0.67:
            st, _ = self.request("DELETE", "/v1/classify")
            self.note("wrong-method", st, (405,))
            st, _ = self.request("GET", "/v2/none")
            self.note("not-found", st, (404,))
        elif k < 0.72:
            for st in self.raw(b"GET /healthz HTTP/1.1\r\n\r\n"):
                self.note("no-host", st, (400,))
        elif k < 0.80:
            body = json.dumps({"text": text}).encode()
            req = (b"POST /v1/classify HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n"
                   % len(body) + body)
            sts = self.raw(req, pieces=6)
            self.note("slow", sts[0] if sts else "none", ok)
        elif k < 0.86:
            body = json.dumps({"text": text + " leaving"}).encode()
            req = (b"POST /v1/classify HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n"
                   % len(body) + body)
            if rng.random() < 0.5:
                self.raw(req[:len(req) // 2], close_early=True)
                self.note("leave-midway", "closed", ("closed",))
            else:
                self.raw(req, reset=True)
                self.note("leave-reset", "reset", ("reset",))
        elif k < 0.94:
            reqs = b""
            for i in range(3):
                body = json.dumps({"text": "%s pipelined %d" % (text, i)}).encode()
                reqs += (b"POST /v1/classify HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            reqs += b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n"
            sts = self.raw(reqs)
            self.note("pipelined", tuple(sts), tuple((a, b, c, 200) for a in ok for b in ok
                                                     for c in ok))
        else:
            st, _ = self.request(rng.choice(["GET", "HEAD"]),
                                 rng.choice(["/healthz", "/readyz", "/metrics", "/v1/policies"]))
            self.note("get", st, (200,))

    def worker(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            try:
                self.one(rng)
            except (OSError, http.client.HTTPException) as e:
                self.note("error", type(e).__name__, ())

    def hupper(self):
        while not self.stop.wait(self.args.hup_every):
            self.proc.send_signal(signal.SIGHUP)
            self.n_hup += 1

    # ---- run -----------------------------------------------------------------------------
    def run(self):
        a = self.args
        self.start()
        self.t0 = time.time()
        threads = [threading.Thread(target=self.worker, args=(i,)) for i in range(a.clients)]
        threads.append(threading.Thread(target=self.hupper))
        for t in threads:
            t.start()
        warm = min(10.0, a.seconds * 0.15)
        samples = {}
        time.sleep(warm)
        samples["start"] = proc_stats(self.proc.pid)
        time.sleep(max(0.0, a.seconds / 2 - warm))
        samples["middle"] = proc_stats(self.proc.pid)
        time.sleep(max(0.0, a.seconds - (time.time() - self.t0)))
        self.stop.set()
        for t in threads:
            t.join()
        time.sleep(1.0)  # connections finish closing
        alive = self.proc.poll() is None
        samples["end"] = proc_stats(self.proc.pid) if alive else (0, 0, 0)
        metrics = self.request("GET", "/metrics")[1].decode() if alive else ""
        rc = None
        if alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = "hung"
        return self.report(samples, alive, rc, metrics)

    def report(self, samples, alive, rc, metrics):
        a = self.args
        q = a.seconds / 4
        first = percentiles([d for t, d in self.lat if t < q])
        last = percentiles([d for t, d in self.lat if t >= a.seconds - q])
        total = sum(sum(v.values()) for v in self.counts.values())
        (r0, f0, t0), (r1, f1, t1), (r2, f2, t2) = (samples["start"], samples["middle"],
                                                      samples["end"])
        cache_budget = a.cache_bytes if a.cache else 0
        fails = []
        if not alive:
            fails.append("the daemon died:\n" + self.daemon_log())
        elif rc != 0:
            fails.append("the daemon did not exit 0 on SIGTERM (%s)" % rc)
        if self.unexpected:
            fails.append("unexpected statuses: %s" % self.unexpected[:20])
        if alive and r2 - r0 > cache_budget + RSS_OVERHEAD:
            fails.append("RSS grew %.1f MiB, over cache_bytes + %d MiB" % (
                (r2 - r0) / 2**20, RSS_OVERHEAD >> 20))
        if alive and r2 - r1 > RSS_PLATEAU and a.seconds >= 60:
            fails.append("RSS still grew %.1f MiB over the second half (over %d MiB)" % (
                (r2 - r1) / 2**20, RSS_PLATEAU >> 20))
        if alive and f2 > f0 + FD_SLACK:
            fails.append("open descriptors grew from %d to %d" % (f0, f2))
        if alive and t2 != t0:
            fails.append("threads changed from %d to %d" % (t0, t2))
        mb = lambda b: "%.1f MiB" % (b / 2**20)
        ms = lambda p: ("n=%d p50=%.0f p95=%.0f p99=%.0f max=%.0f ms" % (
            p["n"], 1e3 * p["p50"], 1e3 * p["p95"], 1e3 * p["p99"], 1e3 * p["max"])
            if p["n"] else "n=0")
        cache_line = [l for l in metrics.splitlines() if l.startswith("shieldd_cache_bytes ")]
        print("soak: %d s, %d clients, cache %s (cache_bytes %s), %d SIGHUP reloads, %d requests"
              % (a.seconds, a.clients, "on" if a.cache else "off", mb(a.cache_bytes),
                 self.n_hup, total))
        print("  RSS      start %s  middle %s  end %s  (bound: start + %s; plateau %s)" % (
            mb(r0), mb(r1), mb(r2), mb(cache_budget + RSS_OVERHEAD), mb(RSS_PLATEAU)))
        print("  fds      start %d  middle %d  end %d  (bound: start + %d)" % (f0, f1, f2,
                                                                             FD_SLACK))
        print("  threads  start %d  middle %d  end %d" % (t0, t1, t2))
        print("  latency of single classifications, first quarter: %s" % ms(first))
        print("  latency of single classifications, last quarter:  %s" % ms(last))
        if cache_line:
            print("  " + cache_line[0])
        for kind in sorted(self.counts):
            print("  %-14s %s" % (kind, ", ".join("%s: %d" % (k, v) for k, v in
                                                   sorted(self.counts[kind].items(), key=str))))
        if fails:
            print("soak: FAILED\n  " + "\n  ".join(fails))
            print("  (daemon log and files kept in %s)" % self.tmp)
            return 1
        print("soak: OK")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--hup-every", type=float, default=3.0)
    p.add_argument("--cache-bytes", type=int, default=256 << 10)
    p.add_argument("--no-cache", dest="cache", action="store_false")
    p.add_argument("--build", default=os.environ.get("SG_BUILD", os.path.join(TOP, "build")))
    p.add_argument("--shieldd", default=None)
    a = p.parse_args()
    a.shieldd = a.shieldd or os.path.join(a.build, "shieldd")
    sys.exit(Soak(a).run())


if __name__ == "__main__":
    main()
