"""clients/gateway/nginx.conf, tested as shipped: nginx (Debian's package) started here with that
file (socket path and listen address substituted) in front of a real shieldd on a Unix socket.
An OpenAI-style moderation request through the gateway equals the daemon's own answer; the
daemon's errors pass through as it wrote them; unknown paths and /metrics are not exposed;
a stopped daemon gives a JSON 503 with Retry-After. Skipped, saying why, only when nginx is
not installed."""
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from clients_common import (NGINX, Daemon, TOP, free_port, make_model, rmtree, start_nginx,
                            stop_nginx, SLOW)

import shieldd_client as sc

CONF = os.path.join(TOP, "clients", "gateway", "nginx.conf")

_tmp = None
_daemon = None
_nginx = None
_port = None


def setUpModule():
    global _tmp, _daemon, _nginx, _port
    if not NGINX:
        raise unittest.SkipTest("nginx is not installed (tools/setup.sh installs nginx-light)")
    _tmp = tempfile.mkdtemp(prefix="nginx-test-")
    _daemon = Daemon(make_model(_tmp), _tmp)
    _port = free_port()
    with open(CONF) as f:
        site = f.read()
    # The shipped file, with only the two deployment-specific values replaced.
    assert "unix:/run/shieldd/shieldd.sock" in site and "listen 127.0.0.1:8089" in site
    site = site.replace("unix:/run/shieldd/shieldd.sock", "unix:" + _daemon.sock)
    site = site.replace("listen 127.0.0.1:8089", "listen 127.0.0.1:%d" % _port)
    _nginx = start_nginx(site, os.path.join(_tmp, "nginx"), lambda: get("/healthz")[0] == 200)


def tearDownModule():
    stop_nginx(_nginx)
    if _daemon:
        _daemon.stop()
    if _tmp:
        rmtree(_tmp)


def request(method, path, body=None, headers=None, port=None):
    c = http.client.HTTPConnection("127.0.0.1", port or _port, timeout=60 * SLOW)
    try:
        h = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def get(path):
    return request("GET", path)


class Gateway(unittest.TestCase):
    def test_openai_moderation_through_gateway(self):
        # What an OpenAI-compatible client sends: a bearer token, a model, a list of inputs.
        body = {"model": "omni-moderation-latest", "input": ["hello there", "second text"]}
        st, h, data = request("POST", "/v1/moderations", body,
                              {"Authorization": "Bearer sk-anything"})
        self.assertEqual(st, 200, data)
        self.assertEqual(h["content-type"], "application/json")
        via = json.loads(data)
        st, _, direct = request("POST", "/v1/moderations", body, port=_daemon.port)
        direct = json.loads(direct)
        self.assertEqual(via["results"], direct["results"])
        self.assertEqual(len(via["results"]), 2)
        self.assertIn("category_scores", via["results"][0])

    def test_python_client_through_gateway(self):
        c = sc.Client("http://127.0.0.1:%d" % _port)
        d = sc.Client("unix:" + _daemon.sock)
        self.assertEqual(c.classify("some text", policies=["hate"]).results,
                         d.classify("some text", policies=["hate"]).results)
        self.assertEqual(c.policies(), d.policies())
        self.assertTrue(c.health().ready)

    def test_many_requests_keepalive(self):
        for i in range(20):
            st, _, _ = request("POST", "/v1/classify", {"text": "n %d" % i, "policies": ["hate"]})
            self.assertEqual(st, 200)

    def test_daemon_errors_pass_through(self):
        st, h, data = request("POST", "/v1/classify", {"text": "x", "policies": ["nope"]})
        st2, _, data2 = request("POST", "/v1/classify", {"text": "x", "policies": ["nope"]},
                                port=_daemon.port)
        self.assertEqual((st, data), (st2, data2))
        self.assertEqual(st, 400)
        self.assertIn(b"unknown policy 'nope'", data)

    def test_not_exposed(self):
        st, _, data = get("/metrics")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(data)["error"]["type"], "not_found")
        st, _, data = get("/v1/moderations")
        self.assertEqual(st, 403)
        self.assertEqual(json.loads(data)["error"]["type"], "forbidden")
        c = http.client.HTTPConnection("127.0.0.1", _port, timeout=60 * SLOW)
        try:
            c.request("POST", "/v1/classify", body=b"x" * (2 << 20),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 413)
            self.assertIn("too large", json.loads(r.read())["error"]["message"])
        finally:
            c.close()

    def test_zz_daemon_down(self):
        # Runs last (name order): stop the daemon, the gateway answers JSON 503.
        _daemon.stop()
        st, h, data = request("POST", "/v1/moderations", {"input": "x"})
        self.assertEqual(st, 503)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(json.loads(data)["error"]["type"], "unavailable")


if __name__ == "__main__":
    unittest.main()
