"""shieldd end to end: the real binary on a temporary Unix socket and a free TCP port, on a tiny
random Gemma 2 model with the real Gemma tokenizer (tools/mkmodel --preset tiny).

Covers every endpoint on both listener kinds, batch input, the OpenAI moderation shape key by
key, equality with `shieldctl classify --json` in-process, more than 20 kinds of bad request
(each answered with the right status and a JSON error while the daemon keeps serving), queue
full (503 + Retry-After), deadlines (504), SIGHUP with a good and a broken policy file,
SIGTERM draining, -n on good and bad configurations, socket-file handling, the result cache,
the connection limit, and a load of 200 concurrent requests. Under an ASan build
(make asan) the daemon's exit status also covers leaks (LeakSanitizer); the load test always
runs its daemon under a leak checker (an ASan build that `make test` builds, or valgrind: see
LoadTest.test_200_concurrent).
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from clients_common import (POLICIES, SHIELDCTL, SHIELDD, SLOW, UnixHTTPConnection, free_port,
                            make_model)

ENABLED = ["dangerous", "harassment", "hate", "sexual"]
OPENAI_EXTRA = ["illicit", "illicit/violent"]  # openai_categories of dangerous.yaml

_tmp = None
_model = None


def setUpModule():
    global _tmp, _model
    _tmp = tempfile.mkdtemp(prefix="shieldd-test-")
    _model = make_model(_tmp)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


class Daemon:
    """A shieldd process on its own socket and port."""

    def __init__(self, *extra, policies=POLICIES, sock_name="s.sock", directory=None,
                 preexec_fn=None, wrapper=(), slow=SLOW, shieldd=SHIELDD):
        """wrapper: a command line the daemon runs under (valgrind); slow: scales the waits;
        shieldd: the binary."""
        self.dir = directory or tempfile.mkdtemp(prefix="d-", dir=_tmp)
        self.sock = os.path.join(self.dir, sock_name)
        self.port = free_port()
        self.slow = slow
        self.log = open(os.path.join(self.dir, "stderr.log"), "w+b")
        self.args = [shieldd, "-d", "-m", _model, "-p", policies,
                     "--listen", "unix:" + self.sock,
                     "--listen", "tcp:127.0.0.1:%d" % self.port] + list(extra)
        self.proc = subprocess.Popen(list(wrapper) + self.args, stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        deadline = time.time() + 120 * slow
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("shieldd exited %d: %s" % (self.proc.returncode,
                                                                self.stderr()))
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise AssertionError("shieldd did not come up: " + self.stderr())
            time.sleep(0.05)

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, kind="tcp", timeout=None):
        if timeout is None:
            timeout = 60 * self.slow
        if kind == "unix":
            return UnixHTTPConnection(self.sock, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, kind="tcp", headers=None):
        c = self.conn(kind)
        try:
            h = dict(headers or {})
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def json(self, method, path, body=None, kind="tcp"):
        status, headers, data = self.request(method, path, body, kind)
        return status, json.loads(data.decode()) if data else None

    def raw(self, data, kind="tcp", wait=5.0, shut=False):
        """Send raw bytes, return everything received until the server closes or `wait`."""
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock)
        else:
            s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(wait * SLOW)
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            return read_to_close(s, lenient=True)
        finally:
            s.close()

    def metrics(self):
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        return data.decode()

    def metric(self, name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * self.slow)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("shieldd did not exit after SIGTERM")
        self.log.close()
        return rc


def wait_until(cond, seconds=10, step=0.05):
    """Poll cond() every `step` s until it holds or `seconds` (scaled by SLOW) pass; its last
    value."""
    deadline = time.time() + seconds * SLOW
    while not cond() and time.time() < deadline:
        time.sleep(step)
    return cond()


def read_to_close(s, lenient=False):
    """Everything socket `s` receives until the peer closes it; with `lenient`, a timeout or a
    reset also ends it (else they raise)."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            if not lenient:
                raise
            return out
        if not chunk:
            return out
        out += chunk


def parse_responses(data):
    """Split raw bytes into (status, headers, body) responses (Content-Length framing)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def classify_inprocess(text, response=None, policies=None):
    args = [SHIELDCTL, "classify", "--model", _model, "--policies", POLICIES, "--json"]
    for p in policies or []:
        args += ["--policy", p]
    if response is not None:
        args += ["--response", response]
    p = subprocess.run(args + ["--", text], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300, check=True)
    return json.loads(p.stdout)


class DaemonTest(unittest.TestCase):
    """One daemon with small limits, shared by the tests of the API and of bad requests."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon("--max-body-bytes", "65536", "--max-header-bytes", "4096",
                       "--max-tokens", "400", "--max-inputs", "8", "--read-timeout", "1.5s",
                       "--idle-timeout", "5s", "--socket-mode", "0600",
                       "--socket-group", str(os.getgid()))

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        assert rc == 0, "shieldd exited %d: %s" % (rc, cls.d.stderr()[-4000:])

    def assertServing(self):
        for kind in ("tcp", "unix"):
            status, body = self.d.json("GET", "/healthz", kind=kind)
            self.assertEqual(status, 200)
            self.assertEqual(body, {"status": "ok"})

    def assertError(self, status, headers, data, want, words=()):
        self.assertEqual(status, want, data[:300])
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        body = json.loads(data.decode())
        self.assertEqual(set(body), {"error"})
        self.assertEqual(set(body["error"]), {"type", "message"})
        self.assertIsInstance(body["error"]["type"], str)
        self.assertIsInstance(body["error"]["message"], str)
        for w in words:
            self.assertIn(w, body["error"]["message"])
        self.assertServing()
        return body

    def assertRawError(self, raw, want, words=()):
        rs = parse_responses(raw)
        self.assertGreaterEqual(len(rs), 1, raw[:300])
        status, headers, data = rs[0]
        return self.assertError(status, headers, data, want, words)

    # ---- endpoints, on both listener kinds ------------------------------------------------

    def test_endpoints_both_listeners(self):
        for kind in ("tcp", "unix"):
            status, body = self.d.json("GET", "/healthz", kind=kind)
            self.assertEqual((status, body), (200, {"status": "ok"}))
            status, body = self.d.json("GET", "/readyz", kind=kind)
            self.assertEqual(status, 200)
            self.assertEqual(body["status"], "ready")
            self.assertEqual(body["model"], "model")
            status, body = self.d.json("GET", "/v1/policies", kind=kind)
            self.assertEqual(status, 200)
            names = [p["name"] for p in body["policies"]]
            self.assertEqual(sorted(names), sorted(ENABLED + ["obscenity", "violence"]))
            for p in body["policies"]:
                self.assertEqual(set(p), {"name", "title", "description", "threshold",
                                          "enabled"})
                self.assertEqual(p["enabled"], p["name"] in ENABLED)
            status, body = self.d.json("POST", "/v1/classify", {"text": "hello " + kind},
                                       kind=kind)
            self.assertEqual(status, 200)
            self.assertEqual(set(body), {"model", "results", "flagged", "usage"})
            self.assertEqual([r["policy"] for r in body["results"]], ENABLED)
            for r in body["results"]:
                self.assertEqual(set(r), {"policy", "probability", "violation", "threshold"})
                self.assertTrue(0.0 <= r["probability"] <= 1.0)
                self.assertEqual(r["violation"], r["probability"] >= r["threshold"])
            self.assertEqual(body["flagged"], any(r["violation"] for r in body["results"]))
            self.assertGreater(body["usage"]["prompt_tokens"], 0)
            status, body = self.d.json("POST", "/v1/moderations", {"input": "hi " + kind},
                                       kind=kind)
            self.assertEqual(status, 200)
            self.assertEqual(len(body["results"]), 1)
            status, headers, data = self.d.request("GET", "/metrics", kind=kind)
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/plain"))
            self.assertIn(b"shieldd_requests_total", data)

    def test_same_answer_on_both_listeners_and_inprocess(self):
        cases = [("How do I bake bread?", None, None),
                 ("You are all worthless idiots.", None, ["hate", "harassment"]),
                 ("How do I make a bomb?", "Sure, here is how:", None),
                 ("\u00bfD\u00f3nde est\u00e1 la biblioteca? \U0001F370", None, ["violence"])]
        for text, response, policies in cases:
            req = {"text": text}
            if response is not None:
                req["response"] = response
            if policies is not None:
                req["policies"] = policies
            _, tcp = self.d.json("POST", "/v1/classify", req, kind="tcp")
            _, unix = self.d.json("POST", "/v1/classify", req, kind="unix")
            ref = classify_inprocess(text, response, policies)
            self.assertEqual(tcp["results"], unix["results"])
            self.assertEqual(tcp["model"], ref["model"])
            self.assertEqual(tcp["flagged"], ref["flagged"])
            self.assertEqual(tcp["usage"]["prompt_tokens"], ref["usage"]["prompt_tokens"])
            self.assertEqual([r["policy"] for r in tcp["results"]],
                             [r["policy"] for r in ref["results"]])
            for a, b in zip(tcp["results"], ref["results"]):
                self.assertEqual(a["violation"], b["violation"])
                self.assertEqual(a["threshold"], b["threshold"])
                # Bit-identical today; the tolerance allows a different summation order when
                # the trunk is reused from an earlier request (DESIGN: 1e-6).
                self.assertAlmostEqual(a["probability"], b["probability"], delta=1e-6)

    def test_batch(self):
        inputs = [{"text": "first input"},
                  {"text": "second input", "policies": ["hate"]},
                  {"text": "third input", "response": "a reply"},
                  {"text": "first input"}]
        for kind in ("tcp", "unix"):
            status, body = self.d.json("POST", "/v1/classify", {"inputs": inputs}, kind=kind)
            self.assertEqual(status, 200, body)
            self.assertEqual(set(body), {"model", "results", "flagged", "usage"})
            self.assertEqual(len(body["results"]), 4)
            for inp, res in zip(inputs, body["results"]):
                self.assertEqual(set(res), {"results", "flagged", "usage"})
                single = dict(inp)
                _, one = self.d.json("POST", "/v1/classify", single)
                self.assertEqual(res["results"], one["results"])
                self.assertEqual(res["flagged"], one["flagged"])
            self.assertEqual([r["policy"] for r in body["results"][1]["results"]], ["hate"])
            self.assertEqual(body["flagged"], any(r["flagged"] for r in body["results"]))
            self.assertEqual(body["usage"]["prompt_tokens"],
                             sum(r["usage"]["prompt_tokens"] for r in body["results"]))
        # Batch-wide policies apply to inputs without their own.
        status, body = self.d.json("POST", "/v1/classify",
                                   {"inputs": [{"text": "a"}, {"text": "b", "policies": ["sexual"]}],
                                    "policies": ["hate", "violence"]})
        self.assertEqual(status, 200)
        self.assertEqual([r["policy"] for r in body["results"][0]["results"]], ["hate", "violence"])
        self.assertEqual([r["policy"] for r in body["results"][1]["results"]], ["sexual"])

    def test_openai_shape(self):
        for inp in ("a single string", ["one", "two", "three"],
                    [{"type": "text", "text": "multimodal text item"}]):
            status, body = self.d.json("POST", "/v1/moderations",
                                       {"input": inp, "model": "omni-moderation-latest"})
            self.assertEqual(status, 200, body)
            self.assertEqual(set(body), {"id", "model", "results"})
            self.assertIsInstance(body["id"], str)
            self.assertTrue(body["id"].startswith("modr-"))
            self.assertEqual(body["model"], "model")
            n = 1 if isinstance(inp, str) else len(inp)
            self.assertEqual(len(body["results"]), n)
            for r in body["results"]:
                self.assertEqual(set(r), {"flagged", "categories", "category_scores",
                                          "category_applied_input_types"})
                self.assertIsInstance(r["flagged"], bool)
                # Our policy names, and the OpenAI categories they answer for (hate, harassment
                # and sexual have the same names; dangerous answers for illicit*).
                keys = sorted(ENABLED + OPENAI_EXTRA)
                self.assertEqual(sorted(r["categories"]), keys)
                self.assertEqual(sorted(r["category_scores"]), keys)
                self.assertEqual(sorted(r["category_applied_input_types"]), keys)
                for name in keys:
                    self.assertIsInstance(r["categories"][name], bool)
                    self.assertIsInstance(r["category_scores"][name], float)
                    self.assertTrue(0 <= r["category_scores"][name] <= 1)
                    self.assertEqual(r["category_applied_input_types"][name], ["text"])
                self.assertEqual(r["flagged"], any(r["categories"].values()))
        # The scores are those of /v1/classify for the same text.
        _, mod = self.d.json("POST", "/v1/moderations", {"input": "compare me"})
        _, cls = self.d.json("POST", "/v1/classify", {"text": "compare me"})
        for r in cls["results"]:
            self.assertEqual(mod["results"][0]["category_scores"][r["policy"]], r["probability"])
            self.assertEqual(mod["results"][0]["categories"][r["policy"]], r["violation"])
        # Ids are unique.
        _, again = self.d.json("POST", "/v1/moderations", {"input": "compare me"})
        self.assertNotEqual(mod["id"], again["id"])

    def test_cache(self):
        text = "cache me %f" % time.time()
        hits = self.d.metric("shieldd_cache_hits_total")
        misses = self.d.metric("shieldd_cache_misses_total")
        _, first = self.d.json("POST", "/v1/classify", {"text": text})
        _, second = self.d.json("POST", "/v1/classify", {"text": text}, kind="unix")
        self.assertEqual(first["results"], second["results"])
        self.assertGreater(first["usage"]["computed_tokens"], 0)
        self.assertEqual(second["usage"]["computed_tokens"], 0)
        self.assertEqual(self.d.metric("shieldd_cache_hits_total"), hits + 1)
        self.assertEqual(self.d.metric("shieldd_cache_misses_total"), misses + 1)
        # A different policy list or a response is a different request.
        _, third = self.d.json("POST", "/v1/classify", {"text": text, "policies": ["hate"]})
        self.assertGreater(third["usage"]["computed_tokens"], 0)
        self.assertEqual(self.d.metric("shieldd_cache_enabled"), 1)

    def test_metrics(self):
        self.d.json("POST", "/v1/classify", {"text": "metrics"})
        self.d.request("GET", "/nope")
        m = self.d.metrics()
        for pat in (r'shieldd_requests_total\{endpoint="/v1/classify",status="200"\} \d+',
                    r'shieldd_requests_total\{endpoint="other",status="404"\} \d+',
                    r'shieldd_request_duration_seconds_bucket\{endpoint="/v1/classify",le="\+Inf"\} \d+',
                    r'shieldd_request_duration_seconds_count\{endpoint="/v1/classify"\} \d+',
                    r"shieldd_computed_tokens_total [1-9]\d*",
                    r"shieldd_prompt_tokens_total [1-9]\d*",
                    r"shieldd_queue_depth \d+",
                    r'shieldd_batch_size_bucket\{le="1"\} \d+',
                    r"shieldd_batch_size_count [1-9]\d*",
                    r"shieldd_cache_hits_total \d+", r"shieldd_cache_misses_total \d+",
                    r'shieldd_model_info\{name="model",arch="gemma2",format="safetensors",'
                    r'precision="f32",kernel="(avx2-f32|avx2-bf16|portable-f32)"\} 1',
                    r"shieldd_connections \d+", r"shieldd_ready 1"):
            self.assertRegex(m, pat)
        for line in m.splitlines():
            self.assertRegex(line, r"^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+0-9.eInf]+)$")

    def test_head_and_keepalive(self):
        c = self.d.conn()
        for _ in range(3):
            c.request("GET", "/healthz")
            r = c.getresponse()
            self.assertEqual(r.read(), b'{"status":"ok"}')
        c.request("HEAD", "/v1/policies")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertGreater(int(r.getheader("Content-Length")), 0)
        self.assertEqual(r.read(), b"")
        c.close()

    def test_socket_mode(self):
        st = os.stat(self.d.sock)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual(st.st_gid, os.getgid())

    # ---- bad requests ------------------------------------------------------------------------

    def post(self, body, path="/v1/classify", kind="tcp", headers=None):
        return self.d.request("POST", path, body, kind=kind, headers=headers)

    def test_bad_json(self):
        cases = [
            (b'{"text": "unterminated', 400, "malformed JSON"),          # malformed JSON
            (b"", 400, "empty request body"),                            # empty body
            (b'["text", "array"]', 400, "JSON object"),                  # not an object
            (b'{"text": "a", "text": "b"}', 400, "duplicate"),           # duplicate keys
            (b'{"text": "nul \\u0000 byte"}', 400, "malformed JSON"),    # NUL in a string
            (b'{"text": "\xff\xfe bad"}', 400, "UTF-8"),                 # invalid UTF-8
            (b'{"text": "\xed\xa0\x80 surrogate"}', 400, "UTF-8"),       # encoded surrogate
            (b'{"text": "\\ud800 lone"}', 400, "malformed JSON"),        # escaped lone surrogate
        ]
        for body, want, word in cases:
            for kind in ("tcp", "unix"):
                st, h, d = self.post(body, kind=kind)
                self.assertError(st, h, d, want, [word])

    def test_bad_fields(self):
        cases = [
            ({}, 400, "missing 'text'"),                                    # missing text
            ({"text": ""}, 400, "'text' is empty"),                         # empty text
            ({"text": 42}, 400, "must be a string"),                        # wrong type
            ({"text": None}, 400, "must be a string"),                      # null text
            ({"text": "a", "response": 7}, 400, "'response' must be a string"),
            ({"text": "a", "response": ""}, 400, "'response' is empty"),
            ({"text": "a", "policies": "hate"}, 400, "must be an array"),   # wrong type
            ({"text": "a", "policies": []}, 400, "'policies' is empty"),
            ({"text": "a", "policies": [1]}, 400, "must be a string"),
            ({"text": "a", "policies": ["nope"]}, 400, "unknown policy 'nope'"),
            ({"text": "a", "policies": ["hate", "hate"]}, 400, "twice"),
            ({"text": "a", "txet": "b"}, 400, "unknown field 'txet'"),
            ({"text": "a", "inputs": [{"text": "b"}]}, 400, "not both"),
            ({"inputs": []}, 400, "'inputs' is empty"),
            ({"inputs": {"text": "a"}}, 400, "must be an array"),
            ({"inputs": ["plain string"]}, 400, "inputs[0]"),
            ({"inputs": [{"text": "ok"}, {"text": ""}]}, 400, "inputs[1]: 'text' is empty"),
            ({"inputs": [{"text": "x"}] * 9}, 413, "max_inputs"),         # too many inputs
            ({"text": "word " * 3000}, 413, "max_tokens"),                # over the token limit
        ]
        for body, want, word in cases:
            st, h, d = self.post(body)
            self.assertError(st, h, d, want, [word])
        mod_cases = [
            ({}, 400, "missing 'input'"),
            ({"input": ""}, 400, "empty"),
            ({"input": 3}, 400, "string or an array"),
            ({"input": []}, 400, "empty array"),
            ({"input": ["a", 2]}, 400, "input[1]"),
            ({"input": [{"type": "image_url", "image_url": {"url": "x"}}]}, 400, "only"),
            ({"input": "a", "model": 5}, 400, "'model' must be a string"),
            ({"input": ["x"] * 9}, 413, "max_inputs"),
        ]
        for body, want, word in mod_cases:
            st, h, d = self.post(body, path="/v1/moderations", kind="unix")
            self.assertError(st, h, d, want, [word])

    def test_bad_http(self):
        d = self.d
        # unknown path, on both listeners
        for kind in ("tcp", "unix"):
            st, h, data = d.request("GET", "/v2/nothing", kind=kind)
            self.assertError(st, h, data, 404, ["/v2/nothing"])
        # wrong method
        st, h, data = d.request("GET", "/v1/classify")
        self.assertError(st, h, data, 405)
        self.assertEqual(h["allow"], "POST")
        st, h, data = d.request("POST", "/healthz", {"x": 1})
        self.assertError(st, h, data, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        st, h, data = d.request("DELETE", "/v1/policies")
        self.assertError(st, h, data, 405)
        # body over the limit: answered from the headers, before the body is sent
        raw = d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        self.assertRawError(raw, 413, ["max_body_bytes", "65536"])
        # ... and when the client sends it anyway
        st, h, data = self.post(json.dumps({"text": "x" * 70000}).encode())
        self.assertError(st, h, data, 413, ["max_body_bytes"])
        # chunked body over the limit
        chunk = b"x" * 40000
        raw = d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n")
        self.assertRawError(raw, 413, ["max_body_bytes"])
        # huge headers
        raw = d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        self.assertRawError(raw, 431, ["max_header_bytes"])
        # huge request line
        raw = d.raw(b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRawError(raw, 414)
        # malformed request line, bad version, bad framing
        self.assertRawError(d.raw(b"GARBAGE\r\n\r\n"), 400, ["request line"])
        self.assertRawError(d.raw(b"GET /healthz HTTP/2.0\r\n\r\n"), 505)
        self.assertRawError(d.raw(b"GET /healthz FTP/1.1\r\n\r\n"), 400)
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
                            400, ["Content-Length"])
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Content-Length: 3\r\n\r\n{}"), 400, ["conflicting"])
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n{}"), 400)
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
                            501)
        self.assertRawError(d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n"), 400)
        self.assertRawError(d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n"), 400,
                            ["folding"])
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n"), 417)
        self.assertRawError(d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                  b"\r\n\r\nzz\r\n"), 400, ["chunk"])

    def test_chunked_and_expect_continue(self):
        body = json.dumps({"text": "chunked hello"}).encode()
        raw = self.d.raw(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Connection: close\r\n\r\n" + b"%x\r\n" % 5 + body[:5] + b"\r\n" +
                         b"%x;ext=1\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\nTrailer: x\r\n\r\n",
                         kind="unix")
        rs = parse_responses(raw)
        self.assertEqual(rs[0][0], 200, raw[:300])
        self.assertEqual(json.loads(rs[0][2])["results"][0]["policy"], "dangerous")
        s = socket.create_connection(("127.0.0.1", self.d.port))
        s.settimeout(10 * SLOW)
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        data = read_to_close(s)
        s.close()
        self.assertEqual(parse_responses(data)[0][0], 200)

    def test_pipelined(self):
        reqs = b""
        bodies = [json.dumps({"text": "pipelined %d" % i}).encode() for i in range(3)]
        for b in bodies:
            reqs += b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
                len(b), b)
        reqs += b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
        reqs += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for kind in ("tcp", "unix"):
            rs = parse_responses(self.d.raw(reqs, kind=kind))
            self.assertEqual([r[0] for r in rs], [200, 200, 200, 404, 200])
            for i in range(3):
                _, one = self.d.json("POST", "/v1/classify", {"text": "pipelined %d" % i})
                self.assertEqual(json.loads(rs[i][2])["results"], one["results"])
            self.assertEqual(rs[4][2], b'{"status":"ok"}')

    def test_slow_clients(self):
        # A client that sends slowly but within read_timeout is served.
        s = socket.create_connection(("127.0.0.1", self.d.port))
        s.settimeout(10 * SLOW)
        body = json.dumps({"text": "slowly"}).encode()
        msg = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for i in range(0, len(msg), 20):
            s.sendall(msg[i:i + 20])
            time.sleep(0.02)
        data = read_to_close(s)
        s.close()
        self.assertEqual(parse_responses(data)[0][0], 200)
        # One that stalls (slowloris) gets 408 after read_timeout, and the connection closes.
        for partial in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"te"):
            t0 = time.time()
            raw = self.d.raw(partial, wait=10)
            self.assertLess(time.time() - t0, 8 * SLOW)
            self.assertRawError(raw, 408, ["read_timeout"])

    def test_disconnects(self):
        before = self.d.metric("shieldd_cancelled_total")
        # Mid-request: headers only, then half a body, then gone.
        for partial in (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Le",
                        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"text\""):
            s = socket.create_connection(("127.0.0.1", self.d.port))
            s.sendall(partial)
            s.close()
        # After the request is complete, before the reply: the request is withdrawn.
        for i in range(6):
            body = json.dumps({"text": "gone before the reply %d %s" % (i, "long " * 300)}).encode()
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.d.sock)
            s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            s.close()
        self.assertServing()
        wait_until(lambda: self.d.metric("shieldd_cancelled_total") >= before + 1, 20)
        self.assertGreaterEqual(self.d.metric("shieldd_cancelled_total"), before + 1)
        st, body = self.d.json("POST", "/v1/classify", {"text": "still serving"})
        self.assertEqual(st, 200)


class QueueTest(unittest.TestCase):
    @staticmethod
    def busy(d, results, n_inputs=64, headers=None):
        """Keep the worker busy with one heavy batch request (in a thread)."""
        text = "long text to keep the worker busy for a while " * 40
        body = json.dumps({"inputs": [{"text": "%d %s" % (i, text)}
                                      for i in range(n_inputs)]}).encode()
        t = threading.Thread(target=lambda: results.append(
            d.request("POST", "/v1/classify", body, headers=headers)))
        t.start()
        deadline = time.time() + 30 * SLOW
        while not re.search(r"^shieldd_running_requests [1-9]", d.metrics(), re.M):
            if time.time() > deadline:
                raise AssertionError("the busy request never ran")
            time.sleep(0.005)
        return t

    def test_queue_full_503(self):
        d = Daemon("--queue-depth", "2", "--no-cache")
        try:
            self.assertEqual(d.metric("shieldd_cache_enabled"), 0)
            heavy = []
            t = self.busy(d, heavy)

            def one(i):
                return d.request("POST", "/v1/classify", {"text": "queued %d" % i},
                                 kind="unix" if i % 2 else "tcp")

            with concurrent.futures.ThreadPoolExecutor(10) as ex:
                res = list(ex.map(one, range(10)))
            t.join()
            self.assertEqual(heavy[0][0], 200)
            codes = [r[0] for r in res]
            self.assertEqual(codes.count(200), 2, codes)   # the two that fit in the queue
            self.assertEqual(codes.count(503), 8, codes)
            for st, h, data in res:
                if st == 503:
                    self.assertEqual(h["retry-after"], "1")
                    self.assertIn("queue_depth", json.loads(data)["error"]["message"])
            self.assertEqual(d.metric("shieldd_queue_full_total"), 8)
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_deadline_504(self):
        d = Daemon("--request-timeout", "0.4s", "--no-cache", "--max-inputs", "256")
        try:
            # Running past the deadline: 504 at the deadline; the worker stops the batch at
            # its next input, so the next request is served at once.
            heavy = []
            t0 = time.time()
            t = self.busy(d, heavy, n_inputs=256)
            t.join()
            st, h, data = heavy[0]
            self.assertEqual(st, 504)
            self.assertIn("request_timeout (0.4s)", json.loads(data)["error"]["message"])
            self.assertLess(time.time() - t0, 0.4 + 1.5 * SLOW)
            self.assertEqual(d.json("POST", "/v1/classify", {"text": "next"})[0], 200)
            # Waiting in the queue past a client's shorter deadline (X-Request-Timeout): 504,
            # answered by the loop while the worker is still busy.
            heavy = []
            t = self.busy(d, heavy, n_inputs=256)
            t0 = time.time()
            st, h, data = d.request("POST", "/v1/classify", {"text": "queued"}, kind="unix",
                                    headers={"X-Request-Timeout": "50ms"})
            waited = time.time() - t0
            t.join()
            body = json.loads(data)
            self.assertEqual(st, 504, body)
            self.assertEqual(set(body["error"]), {"type", "message"})
            self.assertIn("X-Request-Timeout (0.05s)", body["error"]["message"])
            self.assertLess(waited, 0.35)
            self.assertEqual(d.metric("shieldd_timeouts_total"), 3)
            # A longer X-Request-Timeout does not extend request_timeout; a bad one is a 400.
            st, h, data = d.request("POST", "/v1/classify", {"text": "x"},
                                    headers={"X-Request-Timeout": "soon"})
            self.assertEqual(st, 400)
            self.assertIn("X-Request-Timeout", json.loads(data)["error"]["message"])
            st, h, data = d.request("POST", "/v1/classify", {"text": "after the timeouts"},
                                    headers={"X-Request-Timeout": "1h"})
            self.assertEqual(st, 200)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_out_of_descriptors(self):
        """EMFILE on accept: the daemon pauses accepting instead of spinning, and recovers."""
        import resource

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

        d = Daemon(preexec_fn=low_limit)
        try:
            socks = []
            for _ in range(60):
                s = socket.create_connection(("127.0.0.1", d.port))
                socks.append(s)
            time.sleep(0.5)
            for s in socks:
                s.close()
            deadline = time.time() + 10 * SLOW
            while time.time() < deadline:
                try:
                    if d.request("GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
            self.assertEqual(d.json("POST", "/v1/classify", {"text": "recovered"})[0], 200)
            log = d.stderr()
            self.assertIn("pausing new connections", log[-3000:])
            # Paused, not spinning: a few warnings (one per 100 ms at most), not thousands.
            self.assertLess(log.count("accept (pausing"), 100, log[-2000:])
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_connection_limit(self):
        d = Daemon("--max-connections", "2")
        try:
            # Two TCP clients in the middle of a request hold both slots (idle or silent ones
            # would be closed to make room: see test_hostile.py).
            held = []
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", d.port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            time.sleep(0.2)
            raw = d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            rs = parse_responses(raw)
            self.assertEqual(rs[0][0], 503)
            self.assertIn("max_connections", json.loads(rs[0][2])["error"]["message"])
            self.assertEqual(rs[0][1]["retry-after"], "1")
            # The Unix socket keeps a reserve: a local health check still gets in.
            self.assertEqual(d.request("GET", "/healthz", kind="unix")[0], 200)
            for s in held:
                s.close()
            time.sleep(0.2)
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
            self.assertGreaterEqual(d.metric("shieldd_connections_rejected_total"), 1)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])


class LifecycleTest(unittest.TestCase):
    def test_sighup_reload(self):
        pol = os.path.join(_tmp, "policies-hup")
        shutil.copytree(POLICIES, pol)
        d = Daemon(policies=pol)
        try:
            _, before = d.json("POST", "/v1/classify", {"text": "reload me", "policies": ["hate"]})
            self.assertEqual(before["results"][0]["threshold"], 0.5)
            path = os.path.join(pol, "hate.yaml")
            with open(path) as f:
                good = f.read()
            self.assertIn("threshold: 0.5", good)
            with open(path, "w") as f:
                f.write(good.replace("threshold: 0.5", "threshold: 0.25"))
            # A new policy dropped into the directory appears with the reload.
            with open(os.path.join(pol, "custom.yaml"), "w") as f:
                f.write(good.replace("name: hate", "name: custom"))
            d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: d.metric("shieldd_policy_reloads_total") == 1)
            self.assertEqual(d.metric("shieldd_policy_reloads_total"), 1)
            _, pols = d.json("GET", "/v1/policies")
            self.assertEqual([p["threshold"] for p in pols["policies"] if p["name"] == "hate"],
                             [0.25])
            self.assertIn("custom", [p["name"] for p in pols["policies"]])
            st, body = d.json("POST", "/v1/classify", {"text": "x", "policies": ["custom"]})
            self.assertEqual((st, body["results"][0]["policy"]), (200, "custom"))
            # The cache does not serve results computed under the old thresholds.
            _, after = d.json("POST", "/v1/classify", {"text": "reload me", "policies": ["hate"]})
            self.assertEqual(after["results"][0]["threshold"], 0.25)
            self.assertGreater(after["usage"]["computed_tokens"], 0)
            # A broken file: the old set stays, the failure is logged and counted.
            with open(path, "w") as f:
                f.write(good.replace("threshold: 0.5", "threshold: [unclosed"))
            d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: d.metric("shieldd_policy_reload_failures_total") == 1)
            self.assertEqual(d.metric("shieldd_policy_reload_failures_total"), 1)
            self.assertIn("policy reload failed", d.stderr())
            self.assertIn("hate.yaml", d.stderr())
            _, pols = d.json("GET", "/v1/policies")
            self.assertEqual([p["threshold"] for p in pols["policies"] if p["name"] == "hate"],
                             [0.25])
            st, body = d.json("POST", "/v1/classify", {"text": "still works"})
            self.assertEqual(st, 200)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_truncate(self):
        d = Daemon("--max-tokens", "300", "--truncate")
        try:
            st, body = d.json("POST", "/v1/classify", {"text": "many words " * 2000})
            self.assertEqual(st, 200, body)
            self.assertIs(body["truncated"], True)
            self.assertLessEqual(body["usage"]["prompt_tokens"], 300 * len(ENABLED))
            st, body = d.json("POST", "/v1/classify", {"text": "short"})
            self.assertNotIn("truncated", body)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])

    def test_sigterm_drains(self):
        d = Daemon("--no-cache")
        text = "drain me " * 200
        results = []

        def slow():
            results.append(d.json("POST", "/v1/classify",
                                  {"inputs": [{"text": "%d %s" % (i, text)} for i in range(8)]}))

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        # Wait until the three requests are in the daemon (running or queued).
        wait_until(lambda: d.metric("shieldd_queue_depth") +
                   d.metric("shieldd_running_requests") >= 3, step=0.005)
        idle = socket.create_connection(("127.0.0.1", d.port))   # an idle keep-alive client
        rc = d.stop(signal.SIGTERM)
        for t in threads:
            t.join()
        idle.close()
        self.assertEqual(rc, 0, d.stderr()[-3000:])
        self.assertEqual([r[0] for r in results], [200, 200, 200])
        for _, body in results:
            self.assertEqual(len(body["results"]), 8)
        self.assertIn("drained", d.stderr())
        self.assertFalse(os.path.exists(d.sock))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", d.port), timeout=2)

    def test_check_config(self):
        cfg = os.path.join(_tmp, "good.yaml")
        with open(cfg, "w") as f:
            f.write("model: %s\npolicies: %s\nlisten:\n  - unix:/tmp/x.sock\n  - tcp:127.0.0.1:1\n"
                    "cache_ttl: 2m\nmax_body_bytes: 1M\n" % (_model, POLICIES))
        p = subprocess.run([SHIELDD, "-n", "-c", cfg], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"configuration OK\n")
        self.assertFalse(os.path.exists("/tmp/x.sock"))
        bad = [
            ("model: %s\npolicies: %s\nmax_bodybytes: 3\n" % (_model, POLICIES),
             "bad.yaml:3:1: unknown key 'max_bodybytes'"),
            ("model: %s\npolicies: %s\nqueue_depth: many\n" % (_model, POLICIES),
             "bad.yaml:3:14: queue_depth: 'many' is not an integer"),
            ("model: %s\npolicies: [unclosed\n" % _model, "bad.yaml:"),
            ("model: /nonexistent/model\npolicies: %s\n" % POLICIES, "/nonexistent/model"),
            ("model: %s\npolicies: /nonexistent/policies\n" % _model, "/nonexistent/policies"),
            ("model: %s\npolicies: %s\nlisten: http:1\n" % (_model, POLICIES), "listen"),
        ]
        for text, want in bad:
            path = os.path.join(_tmp, "bad.yaml")
            with open(path, "w") as f:
                f.write(text)
            p = subprocess.run([SHIELDD, "-n", "-c", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120 * SLOW)
            self.assertEqual(p.returncode, 1, text)
            self.assertIn(want, p.stderr.decode())
            self.assertNotIn(b"configuration OK", p.stdout)
        # Flags win over the file.
        path = os.path.join(_tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write("model: /nonexistent/model\npolicies: %s\n" % POLICIES)
        p = subprocess.run([SHIELDD, "-n", "-c", path, "--model", _model],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([SHIELDD, "-n", "--bogus-flag", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"unknown flag '--bogus-flag'", p.stderr)

    def test_socket_files(self):
        d = Daemon()
        try:
            # A live socket is not replaced: a second daemon on the same path fails.
            p = subprocess.run([SHIELDD, "-d", "-m", _model, "-p", POLICIES, "--listen",
                                "unix:" + d.sock], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120 * SLOW)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"in use", p.stderr)
            self.assertEqual(d.request("GET", "/healthz", kind="unix")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])
        # A stale socket (a file no one listens on) is replaced.
        d0 = tempfile.mkdtemp(dir=_tmp)
        stale = os.path.join(d0, "s.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        self.assertTrue(os.path.exists(stale))
        d = Daemon(sock_name="s.sock", directory=d0)
        try:
            self.assertEqual(d.request("GET", "/healthz", kind="unix")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-3000:])
        # A file that is not a socket is never replaced.
        plain = os.path.join(d0, "plain")
        with open(plain, "w") as f:
            f.write("keep me")
        p = subprocess.run([SHIELDD, "-d", "-m", _model, "-p", POLICIES, "--listen",
                            "unix:" + plain], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120 * SLOW)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not a socket", p.stderr)
        with open(plain) as f:
            self.assertEqual(f.read(), "keep me")


class SystemdTest(unittest.TestCase):
    def test_notify_and_journal_prefixes(self):
        """Type=notify: READY=1 after the model is loaded, STATUS= lines, STOPPING=1; under the
        journal (JOURNAL_STREAM names stderr) every log line carries a <N> priority."""
        ndir = tempfile.mkdtemp(dir=_tmp)
        npath = os.path.join(ndir, "notify")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(npath)
        ns.settimeout(60 * SLOW)
        log = open(os.path.join(ndir, "stderr"), "w+b")
        st = os.fstat(log.fileno())
        env = dict(os.environ, NOTIFY_SOCKET=npath, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        sock = os.path.join(ndir, "s.sock")
        p = subprocess.Popen([SHIELDD, "-m", _model, "-p", POLICIES, "--listen", "unix:" + sock],
                             stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            msgs = []
            while not any("READY=1" in m for m in msgs):
                msgs.append(ns.recv(4096).decode())
            self.assertTrue(any(m.startswith("STATUS=loading") for m in msgs), msgs)
            self.assertIn("STATUS=serving", msgs[-1])
            # Ready means ready: the socket answers at once.
            c = UnixHTTPConnection(sock)
            c.request("GET", "/readyz")
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            p.send_signal(signal.SIGHUP)
            msgs = [ns.recv(4096).decode(), ns.recv(4096).decode()]
            self.assertTrue(msgs[0].startswith("RELOADING=1"), msgs)
            self.assertTrue(msgs[1].startswith("READY=1"), msgs)
            p.send_signal(signal.SIGTERM)
            self.assertIn("STOPPING=1", ns.recv(4096).decode())
            self.assertEqual(p.wait(timeout=60 * SLOW), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            ns.close()
        log.seek(0)
        lines = log.read().decode().splitlines()
        log.close()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[3467]>")
        self.assertTrue(any(line.startswith("<6>ready: model") for line in lines), lines)

    def test_socket_activation(self):
        """shieldd.socket: the daemon serves on the sockets systemd passes (sd_listen_fds)."""
        activate = shutil.which("systemd-socket-activate")
        if activate is None:
            self.skipTest("systemd-socket-activate is not installed")
        sdir = tempfile.mkdtemp(dir=_tmp)
        sock = os.path.join(sdir, "act.sock")
        port = free_port()
        log = open(os.path.join(sdir, "stderr"), "w+b")
        p = subprocess.Popen([activate, "-l", sock, "-l", "127.0.0.1:%d" % port, SHIELDD, "-d",
                              "-m", _model, "-p", POLICIES, "--listen", "unix:/nonexistent/x.sock"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while not os.path.exists(sock):
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            # The first connection starts the daemon; it waits in the backlog meanwhile.
            c = UnixHTTPConnection(sock, timeout=120 * SLOW)
            c.request("POST", "/v1/classify", body=json.dumps({"text": "activated"}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(len(json.loads(r.read())["results"]), 4)
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60 * SLOW)
            c.request("GET", "/readyz")
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=60 * SLOW), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        log.seek(0)
        out = log.read().decode()
        log.close()
        self.assertIn("socket activation: 2 sockets from systemd", out)
        self.assertIn("listening on systemd:tcp:127.0.0.1:%d" % port, out)


VALGRIND_EXIT = 97   # the daemon's exit status when memcheck found an error or a leak


class LoadTest(unittest.TestCase):
    def test_200_concurrent(self):
        """200 concurrent requests (half Unix socket, half TCP, a fifth OpenAI-shaped), all
        answered 200 within a bound, identical texts with identical scores; then SIGTERM and
        the daemon's own exit status must be 0: no error and no leak.

        The daemon of this test always runs under a leak checker:
        - SG_LOAD_SHIELDD (set by `make test`): a plain `make test` (CI) also builds an
          ASan+UBSan shieldd in build/asan and runs this test against it; in a sanitizer build
          it is the build's own shieldd. LeakSanitizer makes the exit status nonzero on a leak,
          -fno-sanitize-recover makes any UBSan finding fatal. Cost on 2 shared cores: building
          that shieldd (about 40 s of the plain `make test` on a clean tree, nothing when
          up to date) plus about 6 s for the load itself.
        - otherwise, in a plain build (this file run by hand): under valgrind memcheck
          (--leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=97),
          and the log must say "ERROR SUMMARY: 0 errors". The daemon's default f32 precision
          runs the engine's own AVX2 kernels, not oneDNN's JIT code (only --precision bf16 and
          int8 use oneDNN), so memcheck sees only ordinary code; but valgrind serializes the
          threads and the load takes about 5 minutes, which is why `make test` uses ASan."""
        shieldd = os.environ.get("SG_LOAD_SHIELDD") or SHIELDD
        wrapper, slow, vglog = (), SLOW, None
        if shieldd != SHIELDD:
            slow = 4    # an ASan+UBSan binary: scale the waits
        elif SLOW == 1:
            valgrind = shutil.which("valgrind")
            self.assertIsNotNone(valgrind, "valgrind is not installed (tools/setup.sh installs "
                                           "it): the load test runs the daemon under memcheck")
            vglog = os.path.join(tempfile.mkdtemp(prefix="vg-", dir=_tmp), "valgrind.log")
            wrapper = [valgrind, "--tool=memcheck", "--leak-check=full",
                       "--errors-for-leak-kinds=definite,indirect",
                       "--show-leak-kinds=definite,indirect",
                       "--error-exitcode=%d" % VALGRIND_EXIT, "--fair-sched=yes",
                       "--log-file=" + vglog]
            slow = 10
        self.assertTrue(os.access(shieldd, os.X_OK), shieldd + " is missing (make test builds it)")
        d = Daemon("--queue-depth", "256", "--request-timeout", "%ds" % (120 * slow),
                   wrapper=wrapper, slow=slow, shieldd=shieldd)
        rc = None
        try:
            texts = ["load test input number %d: %s" % (i % 150, "some words " * (i % 7))
                     for i in range(200)]
            expected = {}

            def one(i):
                kind = "unix" if i % 2 else "tcp"
                if i % 5 == 4:
                    st, body = d.json("POST", "/v1/moderations", {"input": texts[i]}, kind=kind)
                else:
                    st, body = d.json("POST", "/v1/classify", {"text": texts[i]}, kind=kind)
                return i, st, body

            t0 = time.time()
            with concurrent.futures.ThreadPoolExecutor(200) as ex:
                res = list(ex.map(one, range(200)))
            elapsed = time.time() - t0
            self.assertLess(elapsed, 120 * slow)
            for i, st, body in res:
                self.assertEqual(st, 200, body)
            # Identical texts got identical scores, whether computed, deduplicated or cached.
            for i, st, body in res:
                if "category_scores" not in json.dumps(body):
                    scores = {r["policy"]: r["probability"] for r in body["results"]}
                else:
                    scores = body["results"][0]["category_scores"]
                prev = expected.setdefault(texts[i], scores)
                self.assertEqual(prev, scores)
            m = d.metrics()
            self.assertRegex(m, r"shieldd_batch_size_count [1-9]")
            print("\n  load: 200 concurrent requests in %.2fs (%.0f req/s)%s"
                  % (elapsed, 200 / elapsed, " under valgrind" if vglog else ""))
        finally:
            rc = d.stop()
        report = ""
        if vglog is not None:
            with open(vglog, errors="replace") as f:
                report = f.read()
            self.assertIn("ERROR SUMMARY: 0 errors", report, report[-6000:])
        self.assertEqual(rc, 0, (report or d.stderr())[-6000:])


if __name__ == "__main__":
    unittest.main()
