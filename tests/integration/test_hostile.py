"""shieldd probed as a hostile or broken client would (issue 18, item 8), each finding with its
regression test against the real daemon: half-closed clients get their answer, chunked framing
that another parser could read differently is refused, the Host and Content-Encoding rules,
binary data and HTTP/0.9 answered at once, over-long texts that cannot hold the worker, the 503
at max_connections really delivered, silent connections that cannot lock clients out, the error
messages (NUL in a text, thresholds, TRACE, YAML line numbers), and request texts that never
reach the log.
"""
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import test_daemon
from clients_common import POLICIES, SHIELDD, SLOW, make_model
from test_daemon import Daemon, parse_responses, read_to_close

_tmp = None


def setUpModule():
    global _tmp
    _tmp = tempfile.mkdtemp(prefix="shieldd-hostile-")
    # Daemon (test_daemon) reads its model and folder from that module.
    test_daemon._tmp = _tmp
    test_daemon._model = make_model(_tmp)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


def classify_request(text, extra=b""):
    body = json.dumps({"text": text}).encode()
    return (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def exchange(d, data, kind="tcp", shut=False, wait=10.0):
    """(raw reply, seconds until the server closed)."""
    t0 = time.time()
    raw = d.raw(data, kind=kind, wait=wait, shut=shut)
    return raw, time.time() - t0


class HostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pol = os.path.join(_tmp, "policies-04")
        shutil.copytree(POLICIES, cls.pol)
        path = os.path.join(cls.pol, "dangerous.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"^threshold: .*$", "threshold: 0.4", text, flags=re.M))
        cls.d = Daemon("--max-body-bytes", "2M", policies=cls.pol)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        assert rc == 0, cls.d.stderr()[-3000:]

    def assertServing(self):
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)

    def test_half_closed_post_answered(self):
        for kind in ("tcp", "unix"):
            raw, _ = exchange(self.d, classify_request("half closed " + kind), kind=kind, shut=True)
            rs = parse_responses(raw)
            self.assertEqual([r[0] for r in rs], [200], raw[:300])
            self.assertEqual(len(json.loads(rs[0][2])["results"]), 4)

    def test_truncated_body_then_half_close(self):
        raw, _ = exchange(self.d, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
                                  b"\r\n{\"text\"", shut=True)
        rs = parse_responses(raw)
        self.assertEqual(rs[0][0], 400, raw)
        self.assertIn("7 of its 50 bytes", json.loads(rs[0][2])["error"]["message"])

    def test_chunk_framing(self):
        nxt = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for bad, word in ((b" 14\r\n", "chunk size"), (b";x\r\n", "chunk size"),
                          (b"0\r\nbad trailer\r\n\r\n", "trailer"),
                          (b"0\r\nX: a\x00b\r\n\r\n", "trailer")):
            raw, _ = exchange(self.d, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n" + bad + nxt)
            rs = parse_responses(raw)
            self.assertEqual([r[0] for r in rs], [400], (bad, raw))
            self.assertIn(word, json.loads(rs[0][2])["error"]["message"])
            self.assertEqual(rs[0][1]["connection"], "close")
        self.assertServing()

    def test_host_header(self):
        raw, _ = exchange(self.d, b"GET /healthz HTTP/1.1\r\n\r\n")
        self.assertEqual(parse_responses(raw)[0][0], 400)
        self.assertIn(b"no Host header", raw)
        raw, _ = exchange(self.d, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        self.assertEqual(parse_responses(raw)[0][0], 400)
        self.assertIn(b"more than one Host", raw)
        raw, _ = exchange(self.d, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(parse_responses(raw)[0][0], 200)

    def test_not_http_answered_at_once(self):
        hello = bytes.fromhex("160301020001000001fc0303") + os.urandom(32)
        for data, word in ((hello, b"TLS"), (b"GET /healthz\r\n", b"HTTP/0.9")):
            raw, took = exchange(self.d, data)
            self.assertEqual(parse_responses(raw)[0][0], 400, raw)
            self.assertIn(word, raw)
            self.assertLess(took, 5 * SLOW)  # read_timeout is 10 s: no 408 wait

    def test_content_encoding(self):
        raw, _ = exchange(self.d, classify_request("x", b"Content-Encoding: gzip\r\n"))
        rs = parse_responses(raw)
        self.assertEqual(rs[0][0], 415, raw)
        self.assertIn("'gzip' is not supported", json.loads(rs[0][2])["error"]["message"])

    def test_huge_texts_do_not_hold_the_worker(self):
        # Four 1 MB texts of spaces, each over the token limit, sent at once with a small one:
        # tokenizing stops at the limit, so they cost what the limit costs.
        huge = " " * (1 << 20)
        results = {}

        def post(key, text):
            t0 = time.time()
            st, _, data = self.d.request("POST", "/v1/classify", {"text": text})
            results[key] = (st, time.time() - t0, data)

        threads = [threading.Thread(target=post, args=(i, huge)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        post("small", "a small request behind four huge ones")
        for t in threads:
            t.join()
        for i in range(4):
            st, took, data = results[i]
            self.assertEqual(st, 413, data[:300])
            self.assertIn("at least", json.loads(data)["error"]["message"])
        self.assertEqual(results["small"][0], 200)
        print("\n  huge texts: small request %.2f s, huge ones %s s" % (
            results["small"][1], ", ".join("%.2f" % results[i][1] for i in range(4))))

    def test_messages(self):
        st, h, data = self.d.request("POST", "/v1/classify", b'{"text": "a\\u0000b"}',
                                     headers={"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        msg = json.loads(data)["error"]["message"]
        self.assertIn("NUL character", msg)
        self.assertNotIn("JSON_ALLOW_NUL", msg)
        st, h, data = self.d.request("GET", "/v1/policies")
        self.assertEqual(st, 200)
        self.assertIn(b'"threshold":0.4,', data)
        self.assertNotIn(b"0.40000000000000002", data)
        st, h, data = self.d.request("TRACE", "/healthz")
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        self.assertIn("accepts GET and HEAD", json.loads(data)["error"]["message"])
        # A key without ':' on line 26 is reported on line 26.
        conf = os.path.join(_tmp, "line26.yaml")
        with open(conf, "w") as f:
            f.write("threads: 1\n" + "".join("# comment %d\n" % i for i in range(24)) +
                    "max_tokens 5\nqueue_depth: 3\n")
        p = subprocess.run([SHIELDD, "-n", "-c", conf], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("line26.yaml:26:1: YAML syntax error: could not find expected ':'",
                      p.stderr)

    def test_texts_not_logged(self):
        secret = "zebra-marmalade-%d" % os.getpid()
        self.assertEqual(self.d.request("POST", "/v1/classify", {"text": secret})[0], 200)
        self.assertEqual(self.d.request("POST", "/v1/classify", {"text": secret + "\x00"})[0],
                         400)
        self.assertEqual(self.d.request("POST", "/v1/classify",
                                        {"text": secret, "policies": ["nope"]})[0], 400)
        self.assertNotIn(secret, self.d.stderr())


class ConnectionsTest(unittest.TestCase):
    def test_503_delivered_at_the_limit(self):
        d = Daemon("--max-connections", "4")
        try:
            held = []
            for _ in range(4):  # mid-request: neither idle nor silent, so not shed
                s = socket.create_connection(("127.0.0.1", d.port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            time.sleep(0.2)

            def one(i):
                s = socket.create_connection(("127.0.0.1", d.port))
                s.settimeout(20 * SLOW)
                try:
                    s.sendall(classify_request("over the limit %d" % i))
                    return parse_responses(read_to_close(s))[0][0]
                except (ConnectionResetError, IndexError) as e:
                    return repr(e)
                finally:
                    s.close()

            with concurrent.futures.ThreadPoolExecutor(40) as ex:
                got = list(ex.map(one, range(40)))
            self.assertEqual(got, [503] * 40)
            for s in held:
                s.close()
            self.assertTrue(test_daemon.wait_until(
                lambda: d.request("GET", "/healthz")[0] == 200, 10))
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_silent_connections(self):
        d = Daemon("--max-connections", "8", "--read-timeout", "2s", "--idle-timeout", "60s")
        try:
            silent = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(8)]
            time.sleep(0.2)
            # A talking client gets in: the oldest silent connection makes room.
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
            self.assertGreaterEqual(d.metric("shieldd_connections_shed_total"), 1)
            # The rest are closed after read_timeout (2 s), not idle_timeout (60 s).
            t0 = time.time()
            for s in silent:
                s.settimeout(30 * SLOW)
                self.assertEqual(s.recv(10), b"")
                s.close()
            self.assertLess(time.time() - t0, 10 * SLOW)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])


if __name__ == "__main__":
    unittest.main()
