"""clients/python/shieldd_client.py against the real shieldd on a Unix socket and on TCP:
classify (one, batch, prompt-response, named policies), moderate, policies, health, typed
results equal to shieldctl's, endpoint selection, and the error paths: the daemon's 4xx with its
message, no daemon, a listener that never answers (timeout), a non-HTTP reply, bad endpoints."""
import json
import os
import socket
import threading
import unittest

from clients_common import ctl, start, stop

import shieldd_client as sc

_tmp = None
_model = None
_daemon = None


def setUpModule():
    global _tmp, _model, _daemon
    _tmp, _model, _daemon = start("py-client-test-")


def tearDownModule():
    stop(_tmp, _daemon)


class API(unittest.TestCase):
    def clients(self):
        return [sc.Client("unix:" + _daemon.sock, timeout=60), sc.Client(_daemon.sock),
                sc.Client(_daemon.url + "/")]

    def test_classify_matches_shieldctl(self):
        ref = json.loads(ctl("classify", "--model", _model, "--json", "--policy", "hate",
                             "--policy", "sexual", "hello there").stdout)
        for c in self.clients():
            r = c.classify("hello there", policies=["hate", "sexual"])
            self.assertIsInstance(r, sc.ClassifyResult)
            self.assertEqual(r.model, "model")
            self.assertEqual([s.policy for s in r.results], ["hate", "sexual"])
            for s, want in zip(r.results, ref["results"]):
                self.assertIsInstance(s, sc.PolicyScore)
                self.assertEqual(s.probability, want["probability"])
                self.assertEqual(s.violation, want["violation"])
                self.assertEqual(s.threshold, 0.5)
            self.assertEqual(r.flagged, ref["flagged"])
            self.assertEqual(r.prompt_tokens, ref["usage"]["prompt_tokens"])
            self.assertEqual(r.score("hate").policy, "hate")
            with self.assertRaises(KeyError):
                r.score("violence")

    def test_prompt_response_and_batch(self):
        c = sc.Client(_daemon.url)
        r = c.classify("how do I bake bread?", response="Mix flour and water.")
        self.assertEqual(len(r.results), 4)
        rs = c.classify_batch(["one", "two", "three"], policies=["hate"])
        self.assertEqual(len(rs), 3)
        self.assertEqual(rs[1], c.classify("two", policies=["hate"]))

    def test_moderate(self):
        c = sc.Client("unix:" + _daemon.sock)
        ms = c.moderate(["first text", "second"])
        self.assertEqual(len(ms), 2)
        self.assertIsInstance(ms[0], sc.Moderation)
        self.assertTrue(ms[0].category_scores)
        self.assertEqual(set(ms[0].categories), set(ms[0].category_scores))
        self.assertEqual(len(c.moderate("just one")), 1)

    def test_policies_and_health(self):
        c = sc.Client(_daemon.url)
        ps = c.policies()
        self.assertEqual([p.name for p in ps],
                         ["dangerous", "harassment", "hate", "obscenity", "sexual", "violence"])
        self.assertTrue(all(isinstance(p, sc.Policy) for p in ps))
        self.assertEqual({p.name for p in ps if not p.enabled}, {"obscenity", "violence"})
        h = c.health()
        self.assertEqual(h, sc.Health(True, True, "model", 6))

    def test_default_endpoint(self):
        old = dict(os.environ)
        try:
            os.environ.pop("SHIELDD_URL", None)
            os.environ["SHIELDD_SOCKET"] = _daemon.sock
            self.assertEqual(sc.Client().health().ready, True)
            os.environ.pop("SHIELDD_SOCKET")
            os.environ["SHIELDD_URL"] = _daemon.url
            self.assertEqual(sc.Client().endpoint, _daemon.url)
            os.environ.pop("SHIELDD_URL")
            self.assertEqual(sc.default_endpoint(), "unix:/run/shieldd/shieldd.sock")
        finally:
            os.environ.clear()
            os.environ.update(old)


class Errors(unittest.TestCase):
    def test_api_errors(self):
        c = sc.Client(_daemon.url)
        with self.assertRaises(sc.APIError) as cm:
            c.classify("hi", policies=["nope"])
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("unknown policy 'nope'", cm.exception.message)
        self.assertTrue(cm.exception.type)
        self.assertIsInstance(cm.exception, sc.ShielddError)
        with self.assertRaises(sc.APIError) as cm:
            c.classify("")
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(sc.APIError) as cm:
            c._request("GET", "/nowhere")
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(TypeError):
            c.classify(b"bytes")

    def test_unreachable(self):
        with self.assertRaises(sc.ConnectError) as cm:
            sc.Client("unix:" + os.path.join(_tmp, "none.sock")).health()
        self.assertIn("cannot connect", str(cm.exception))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(sc.ConnectError):
            sc.Client("http://127.0.0.1:%d" % port).policies()

    def test_timeout(self):
        p = os.path.join(_tmp, "mute.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(p)
        s.listen(1)
        try:
            with self.assertRaises(sc.TimeoutError_) as cm:
                sc.Client("unix:" + p, timeout=0.3).health()
            self.assertIsInstance(cm.exception, TimeoutError)
            self.assertIn("no response within 0.3s", str(cm.exception))
        finally:
            s.close()

    def test_not_http(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]

        def garbage():
            conn, _ = s.accept()
            conn.recv(1000)
            conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
            conn.close()

        t = threading.Thread(target=garbage)
        t.start()
        try:
            with self.assertRaises(sc.ProtocolError):
                sc.Client("http://127.0.0.1:%d" % port, timeout=5).health()
        finally:
            t.join()
            s.close()

    def test_bad_endpoints(self):
        for ep in ["ftp://x", "unix:", "http://h:1/v1", "localhost:8088"]:
            with self.assertRaises(ValueError, msg=ep):
                sc.Client(ep)


if __name__ == "__main__":
    unittest.main()
