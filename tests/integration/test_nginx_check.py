"""clients/gateway/nginx-check.conf, tested as shipped: Debian's nginx in front of a stand-in LLM
server (a Python HTTP server that records what reaches it), gated by a real shieldd through POST
/v1/check/chat/completions. An allowed chat completion reaches the model with its body byte for
byte; a flagged one gets shieldd's 403 (JSON reason, X-Shieldd-Flagged-Policies) and never
reaches the model; nginx's own refusals (method, body size) are JSON; the daemon down gives a
JSON 503 without calling the model (fail closed); proxy_read_timeout exceeds request_timeout."""
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from clients_common import (NGINX, POLICIES, SHIELDD, TOP, Daemon, free_port, make_model, rmtree,
                            start_nginx, stop_nginx, SLOW)

CONF = os.path.join(TOP, "clients", "gateway", "nginx-check.conf")

_tmp = _daemon = _nginx = _llm = _port = _pdir = None
_seen = []  # (method, path, body) that reached the model


class LLM(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        _seen.append((self.command, self.path, body))
        out = json.dumps({"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def set_thresholds(value):
    for name in ("dangerous", "harassment", "hate", "sexual"):
        path = os.path.join(_pdir, name + ".yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"(?m)^threshold: .*$", "threshold: %r" % value, text))
    reloads = _daemon.stderr().count("SIGHUP: reloaded")
    _daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30 * SLOW
    while _daemon.stderr().count("SIGHUP: reloaded") == reloads:
        assert time.time() < deadline, "no reload"
        time.sleep(0.05)


def setUpModule():
    global _tmp, _daemon, _nginx, _llm, _port, _pdir
    _tmp = tempfile.mkdtemp(prefix="nginx-check-")
    _pdir = os.path.join(_tmp, "policies")
    shutil.copytree(POLICIES, _pdir)
    model = make_model(_tmp)
    _daemon = Daemon(model, _tmp, "-p", _pdir, "-v")
    _llm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LLM)
    threading.Thread(target=_llm.serve_forever, daemon=True).start()
    _port = free_port()
    with open(CONF) as f:
        site = f.read()
    # The shipped file, with only the deployment-specific addresses replaced.
    for old in ("unix:/run/shieldd/shieldd.sock", "listen 127.0.0.1:8090",
                "server 127.0.0.1:8000"):
        assert old in site, old
    site = site.replace("unix:/run/shieldd/shieldd.sock", "unix:" + _daemon.sock)
    site = site.replace("listen 127.0.0.1:8090", "listen 127.0.0.1:%d" % _port)
    site = site.replace("server 127.0.0.1:8000", "server 127.0.0.1:%d" % _llm.server_address[1])
    _nginx = start_nginx(site, os.path.join(_tmp, "nginx"),
                         lambda: request("GET", "/nothing-here")[0] == 404)


def tearDownModule():
    stop_nginx(_nginx)
    if _llm:
        _llm.shutdown()
        _llm.server_close()
    if _daemon:
        _daemon.stop()
    if _tmp:
        rmtree(_tmp)


def request(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", _port, timeout=60 * SLOW)
    try:
        c.request(method, path, body=body, headers=dict(headers or {}))
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def chat(text, extra=b""):
    # A body as a client writes it, with fields shieldd does not read.
    return (b'{"model": "gpt-4o-mini", "stream": false, "temperature": 0.5, "messages": '
            b'[{"role": "system", "content": "Be brief."}, {"role": "user", "content": '
            + json.dumps(text).encode() + b"}]" + extra + b"}")


class NginxCheck(unittest.TestCase):
    def test_a_allowed_reaches_the_model(self):
        set_thresholds(1.0)  # nothing is flagged
        del _seen[:]
        body = chat("What is the capital of France?")
        st, h, data = request("POST", "/v1/chat/completions", body,
                              {"Content-Type": "application/json", "Authorization": "Bearer sk-x"})
        self.assertEqual(st, 200, data)
        self.assertEqual(json.loads(data)["object"], "chat.completion")
        self.assertEqual(_seen, [("POST", "/v1/chat/completions", body)])
        self.assertNotIn("x-accel-redirect", h)

    def test_b_flagged_is_refused(self):
        set_thresholds(0.0)  # everything is flagged
        del _seen[:]
        st, h, data = request("POST", "/v1/chat/completions", chat("anything at all"),
                              {"Content-Type": "application/json"})
        self.assertEqual(st, 403, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        err = json.loads(data)["error"]
        self.assertEqual(err["type"], "policy_violation")
        self.assertEqual(h["x-shieldd-flagged-policies"], "dangerous,harassment,hate,sexual")
        self.assertEqual(err["policies"], h["x-shieldd-flagged-policies"])
        self.assertEqual(_seen, [])
        # shieldd's own 400 passes through, JSON, and the model is not called.
        st, _, data = request("POST", "/v1/chat/completions", b'{"model": "m"}',
                              {"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        self.assertIn("missing 'messages'", json.loads(data)["error"]["message"])
        self.assertEqual(_seen, [])

    def test_c_nginx_refusals_are_json(self):
        st, h, data = request("GET", "/v1/chat/completions")
        self.assertEqual(st, 403)
        self.assertEqual(json.loads(data)["error"]["type"], "forbidden")
        st, h, data = request("POST", "/v1/chat/completions", b"x" * (2 << 20),
                              {"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        self.assertIn("too large", json.loads(data)["error"]["message"])
        st, _, data = request("GET", "/metrics")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(data)["error"]["type"], "not_found")
        self.assertEqual(_seen, [])

    def test_d_timeouts(self):
        with open(CONF) as f:
            conf = f.read()
        check = conf[conf.index("location = /v1/chat/completions"):conf.index("location = /_llm")]
        read = int(re.search(r"proxy_read_timeout (\d+)s;", check).group(1))
        usage = subprocess.run([SHIELDD, "--help"], capture_output=True).stdout.decode()
        default = int(re.search(r"request_timeout .*\(default: (\d+)s\)", usage).group(1))
        self.assertGreater(read, default)

    def test_zz_daemon_down_fails_closed(self):
        _daemon.stop()
        del _seen[:]
        st, h, data = request("POST", "/v1/chat/completions", chat("hello"),
                              {"Content-Type": "application/json"})
        self.assertEqual(st, 503)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(json.loads(data)["error"]["type"], "unavailable")
        self.assertEqual(_seen, [])


if __name__ == "__main__":
    unittest.main()
