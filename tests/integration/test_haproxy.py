"""shieldd behind HAProxy (Debian's), with deploy/haproxy/haproxy.cfg as it is but for the
addresses: 3 daemons on loopback, a bounded load of 500 POST /v1/classify from 8 clients, one
daemon SIGTERMed and another killed with -9 while each has requests in flight. No client sees a
failed request, the drained daemon answers what it had and exits 0, and the cost of the retries
(HAProxy's retry and redispatch counters, latencies) is printed."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from clients_common import SLOW, TOP, Daemon, free_port, make_model, rmtree

CFG = os.path.join(TOP, "deploy", "haproxy", "haproxy.cfg")
N_REQUESTS = 500
CLIENTS = 8

_tmp = None
_daemons = []
_haproxy = None


def stats_cmd(sock, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(cmd.encode() + b"\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode()


class HAProxy:
    """haproxy -db with the example config, its bind, stats socket and servers replaced."""

    def __init__(self, tmp, ports):
        with open(CFG) as f:
            cfg = f.read()
        self.port = free_port()
        self.stats = os.path.join(tmp, "haproxy.sock")
        cfg, n1 = re.subn(r"(?m)^    bind \S+$", "    bind 127.0.0.1:%d" % self.port, cfg)
        cfg, n2 = re.subn(r"(?m)^    stats socket \S+", "    stats socket " + self.stats, cfg)
        lines = ["    server shieldd%d 127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports)]
        cfg, n3 = re.subn(r"(?m)^    server shieldd1 .*\n    server shieldd2 .*\n"
                          r"    server shieldd3 .*$", "\n".join(lines), cfg)
        assert (n1, n2, n3) == (1, 1, 1), "deploy/haproxy/haproxy.cfg changed shape: %s" % (
            (n1, n2, n3),)
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.log = open(os.path.join(tmp, "haproxy.log"), "w+b")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            if os.path.exists(self.stats) and self.servers_up() == len(ports):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("haproxy did not come up with every server: " + self.output())

    def stat(self):
        """{server name: row dict} of backend shieldd, and the BACKEND row."""
        out = stats_cmd(self.stats, "show stat")
        head = out.splitlines()[0].lstrip("# ").split(",")
        rows = {}
        for line in out.splitlines()[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "shieldd":
                rows[row["svname"]] = row
        return rows

    def servers_up(self):
        try:
            return sum(1 for k, r in self.stat().items()
                       if k.startswith("shieldd") and r["status"] == "UP")
        except OSError:
            return 0

    def output(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        # The log lines of requests that did not end well, and HAProxy's own messages.
        return "\n".join(l for l in lines if '" 200 ' not in l and " 200 " not in l)[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def setUpModule():
    global _tmp, _haproxy
    _tmp = tempfile.mkdtemp(prefix="haproxy-test-")
    try:
        model = make_model(_tmp)
        for _ in range(3):
            _daemons.append(Daemon(model, _tmp))
        _haproxy = HAProxy(_tmp, [d.port for d in _daemons])
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if _haproxy:
        _haproxy.stop()
    for d in _daemons:
        d.stop()
    rmtree(_tmp)


TEXT = ("Please summarise the following message and tell me whether it is polite. " * 6)


class Load:
    """N_REQUESTS classify requests from CLIENTS keep-alive connections through HAProxy."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.next = 0
        self.results = []   # (index, status, server, t0, t1, body)

    def client(self):
        conn = None
        while True:
            with self.lock:
                i = self.next
                if i >= N_REQUESTS:
                    break
                self.next += 1
            body = json.dumps({"text": "%d. %s" % (i, TEXT)})
            t0 = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                res = (i, r.status, r.getheader("X-Shieldd-Server"), t0, time.time(), data)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                res = (i, "client error: %r" % e, None, t0, time.time(), b"")
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                self.results.append(res)
        if conn:
            conn.close()

    def done(self):
        with self.lock:
            return len(self.results)


def wait_busy(name, deadline):
    """Until HAProxy has a request in flight on server `name` (current sessions >= 1)."""
    while time.time() < deadline:
        if int(_haproxy.stat()[name]["scur"] or 0) >= 1:
            return
        time.sleep(0.002)
    raise AssertionError("%s never had a request in flight" % name)


class Failover(unittest.TestCase):
    def test_sigterm_and_kill9_under_load(self):
        load = Load(_haproxy.port)
        threads = [threading.Thread(target=load.client) for _ in range(CLIENTS)]
        t_start = time.time()
        for t in threads:
            t.start()
        deadline = time.time() + 120 * SLOW
        drained, killed = _daemons[0], _daemons[1]
        while load.done() < N_REQUESTS * 3 // 10 and time.time() < deadline:
            time.sleep(0.005)
        wait_busy("shieldd1", deadline)
        t_term = time.time()
        drained.proc.send_signal(signal.SIGTERM)
        while load.done() < N_REQUESTS * 6 // 10 and time.time() < deadline:
            time.sleep(0.005)
        wait_busy("shieldd2", deadline)
        t_kill = time.time()
        killed.proc.send_signal(signal.SIGKILL)
        for t in threads:
            t.join(120 * SLOW)
        t_end = time.time()
        res = sorted(load.results)
        self.assertEqual(len(res), N_REQUESTS)
        failed = [(i, st, body[:200]) for i, st, _, _, _, body in res if st != 200]
        self.assertEqual(failed, [], "requests failed through HAProxy: " + _haproxy.output())
        for _, _, _, _, _, body in res:
            self.assertEqual(len(json.loads(body)["results"]), 4)
        # The drained daemon answered what it had after SIGTERM, then exited cleanly.
        self.assertEqual(drained.proc.wait(30 * SLOW), 0)
        log = drained.stderr()
        self.assertIn("no longer accepting", log)
        self.assertIn("drained: every connection is closed", log)
        after_term = [r for r in res if r[2] == "shieldd1" and r[4] > t_term]
        self.assertGreater(len(after_term), 0, "shieldd1 had nothing in flight at SIGTERM")
        self.assertFalse(any(r[3] > t_term + 1.0 for r in after_term),
                         "shieldd1 got new requests well after SIGTERM")
        killed.proc.wait(10)
        st = _haproxy.stat()
        retries = sum(int(st[s]["wretr"] or 0) for s in st if s.startswith("shieldd"))
        redisp = sum(int(st[s]["wredis"] or 0) for s in st if s.startswith("shieldd"))
        self.assertGreater(retries + redisp, 0, "the kill -9 cost no retry: did it hit?")
        # Both out of rotation (by live traffic at once, or by the checks: fall 2 x inter 1 s).
        deadline = time.time() + 5 * SLOW
        while time.time() < deadline and not all(
                _haproxy.stat()[n]["status"].startswith("DOWN") for n in ("shieldd1", "shieldd2")):
            time.sleep(0.1)
        st = _haproxy.stat()
        self.assertEqual(st["shieldd1"]["status"].split()[0], "DOWN")
        self.assertEqual(st["shieldd2"]["status"].split()[0], "DOWN")
        served = {s: sum(1 for r in res if r[2] == s) for s in ("shieldd1", "shieldd2",
                                                                  "shieldd3")}
        lat = sorted(r[4] - r[3] for r in res)
        hit = sorted(r[4] - r[3] for r in res if r[3] <= t_kill <= r[4] or
                     r[3] <= t_term <= r[4])
        sys.stderr.write(
            "\n  haproxy failover: %d requests in %.2f s, all 200; served %s; HAProxy retries "
            "%d, redispatches %d; latency median %.1f ms, p99 %.1f ms, max %.1f ms; requests in "
            "flight at SIGTERM/SIGKILL: %d, their max %.1f ms\n" % (
                N_REQUESTS, t_end - t_start, served, retries, redisp,
                1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)], 1000 * lat[-1],
                len(hit), 1000 * (hit[-1] if hit else 0)))


class Config(unittest.TestCase):
    def test_example_config_is_valid(self):
        r = subprocess.run(["haproxy", "-c", "-f", CFG], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        with open(CFG) as f:
            cfg = f.read()
        for line in ("balance leastconn", "option httpchk",
                     "http-check send meth GET uri /readyz",
                     "retry-on conn-failure empty-response 503", "option redispatch 1",
                     "option http-buffer-request"):
            self.assertIn(line, cfg)


if __name__ == "__main__":
    unittest.main()
