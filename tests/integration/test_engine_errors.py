"""Issue 18 item 2, the daemon side: when the engine fails at run time (a compute kernel, forced
here with the engine's test hook SG_FAULT_MATMUL=N: matrix products N, N+1, ... of the process
fail with SG_ECOMPUTE), every moderation endpoint answers 500 with the JSON error and the
engine's message, never a probability; /metrics counts it under
shieldd_model_errors_total{reason="compute"}; nothing is cached; results cached before the
failure are still served; the daemon keeps serving."""
import os
import re
import shutil
import tempfile
import unittest

from clients_common import make_model
from test_gateway import Daemon

import test_gateway

_tmp = None


def setUpModule():
    global _tmp
    _tmp = tempfile.mkdtemp(prefix="engine-errors-")
    test_gateway._tmp = _tmp
    test_gateway._model = make_model(_tmp)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


def fault_daemon(n, *extra):
    old = os.environ.get("SG_FAULT_MATMUL")
    os.environ["SG_FAULT_MATMUL"] = str(n)
    try:
        return Daemon(*extra)
    finally:
        if old is None:
            del os.environ["SG_FAULT_MATMUL"]
        else:
            os.environ["SG_FAULT_MATMUL"] = old


class EngineErrorTest(unittest.TestCase):
    def assert500(self, st, body):
        self.assertEqual(st, 500, body)
        self.assertEqual(set(body), {"error"})
        self.assertEqual(body["error"]["type"], "server_error")
        self.assertIn("the model failed", body["error"]["message"])
        self.assertIn("compute kernel failed", body["error"]["message"])

    def compute_errors(self, d):
        m = re.search(r'^shieldd_model_errors_total\{reason="compute"\} (\d+)$', d.metrics(),
                      re.M)
        return int(m.group(1))

    def test_every_endpoint_fails_closed(self):
        d = fault_daemon(0)  # every matrix product fails
        try:
            reqs = [("/v1/classify", {"text": "a"}),
                    ("/v1/classify", {"inputs": [{"text": "b"}, {"text": "c"}]}),
                    ("/v1/classify", {"messages": [{"role": "user", "content": "d"}]}),
                    ("/v1/moderations", {"input": ["e", "f"]}),
                    ("/beta/litellm_basic_guardrail_api", {"texts": ["g"]}),
                    ("/v1/check/chat/completions",
                     {"messages": [{"role": "user", "content": "h"}]})]
            for i, (path, body) in enumerate(reqs):
                st, out = d.json("POST", path, body)
                self.assert500(st, out)
                self.assertEqual(self.compute_errors(d), i + 1)
            # Nothing was cached, and the same request fails again rather than being answered.
            self.assertIn("shieldd_cache_entries 0\n", d.metrics())
            self.assert500(*d.json("POST", "/v1/classify", {"text": "a"}))
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
            self.assertIn("the model failed (compute kernel failed)", d.stderr())
        finally:
            self.assertEqual(d.stop(), 0)

    def test_failure_after_successes(self):
        d = fault_daemon(200)  # the first requests run, then every product fails
        try:
            ok, failed = [], None
            for i in range(50):
                st, out = d.json("POST", "/v1/classify", {"text": "text %d" % i})
                if st != 200:
                    self.assert500(st, out)
                    failed = i
                    break
                self.assertTrue(all(0 <= r["probability"] <= 1 for r in out["results"]))
                ok.append(out)
            self.assertIsNotNone(failed, "the fault never came")
            self.assertGreater(len(ok), 0)
            # Later requests fail too (no silent answer), cached ones are still served.
            self.assert500(*d.json("POST", "/v1/classify", {"text": "never seen"}))
            st, again = d.json("POST", "/v1/classify", {"text": "text 0"})
            self.assertEqual(st, 200)
            self.assertEqual(again["results"], ok[0]["results"])
            self.assertEqual(again["usage"]["computed_tokens"], 0)
            self.assertEqual(self.compute_errors(d), 2)
        finally:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
