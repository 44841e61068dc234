"""shieldctl's daemon commands (classify --socket/--url, health, policies) on libshieldclient
against the real shieldd: the same output as in-process, endpoint selection ($SHIELDD_SOCKET,
$SHIELDD_URL, the standard socket), the daemon's errors shown as it wrote them with a non-zero
exit, and transport errors (no daemon, bad endpoint)."""
import json
import os
import re
import unittest

from clients_common import ctl, start, stop

_tmp = None
_model = None
_daemon = None


def setUpModule():
    global _tmp, _model, _daemon
    _tmp, _model, _daemon = start("clients-test-")


def tearDownModule():
    stop(_tmp, _daemon)


def strip_computed(out):
    """computed_tokens depends on what the engine had cached from earlier requests (the
    daemon's shared prefix); everything else must be equal byte for byte."""
    return re.sub(rb'("computed_tokens":|"cached_tokens":|computed tokens: +)[0-9]+', rb"\1N", out)


class Classify(unittest.TestCase):
    def test_same_as_in_process(self):
        local = ctl("classify", "--model", _model, "--json", "--response", "sure, here",
                    "--policy", "hate", "--policy", "violence", "how do I cook rice?")
        self.assertEqual(local.returncode, 0, local.stderr.decode())
        for ep in (["--socket", _daemon.sock], ["--url", _daemon.url]):
            r = ctl("classify", *ep, "--json", "--response", "sure, here", "--policy", "hate",
                    "--policy", "violence", "how do I cook rice?")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(strip_computed(r.stdout), strip_computed(local.stdout))
        # The table too, and stdin.
        a = ctl("classify", "--model", _model, "-", input=b"caf\xc3\xa9\n")
        b = ctl("classify", "--socket", _daemon.sock, "-", input=b"caf\xc3\xa9\n")
        self.assertEqual(b.returncode, 0, b.stderr.decode())
        self.assertEqual(strip_computed(a.stdout), strip_computed(b.stdout))
        self.assertIn(b"flagged:", b.stdout)

    def test_env_endpoints(self):
        r = ctl("classify", "--json", "hi", env={"SHIELDD_SOCKET": _daemon.sock})
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(json.loads(r.stdout)["model"], "model")
        r = ctl("classify", "--json", "hi", env={"SHIELDD_URL": _daemon.url})
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        # $SHIELDD_SOCKET wins over $SHIELDD_URL; --url wins over both.
        r = ctl("classify", "hi", env={"SHIELDD_SOCKET": "/nonexistent/x.sock",
                                       "SHIELDD_URL": _daemon.url})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unix:/nonexistent/x.sock: cannot connect", r.stderr.decode())
        r = ctl("classify", "--url", _daemon.url, "hi",
                env={"SHIELDD_SOCKET": "/nonexistent/x.sock"})
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_default_socket(self):
        if os.path.exists("/run/shieldd/shieldd.sock"):
            self.skipTest("a shieldd is running on the standard socket")
        r = ctl("health")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unix:/run/shieldd/shieldd.sock: cannot connect", r.stderr.decode())

    def test_daemon_errors_verbatim(self):
        r = ctl("classify", "--socket", _daemon.sock, "--policy", "nope", "hi")
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        self.assertTrue(err.startswith("shieldctl classify: HTTP 400: unknown policy 'nope'"), err)
        self.assertEqual(r.stdout, b"")
        r = ctl("classify", "--url", _daemon.url, "")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 400: ", r.stderr.decode())

    def test_argument_errors(self):
        for args, msg in [(["--socket", "a", "--url", "http://b:1", "x"], "only one of"),
                          (["--url", "ftp://x", "x"], "neither unix:PATH nor http"),
                          (["--truncate", "x"], "need --model"),
                          (["--model", "m", "--socket", "s", "x"], "does not go with")]:
            r = ctl("classify", *args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(msg, r.stderr.decode(), args)


class HealthPolicies(unittest.TestCase):
    def test_health(self):
        for ep in (["--socket", _daemon.sock], ["--url", _daemon.url]):
            r = ctl("health", *ep)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn(b"ready: model model, 6 policies", r.stdout)
        r = ctl("health", "--socket", _daemon.sock, "--json")
        self.assertEqual(json.loads(r.stdout)["status"], "ready")
        r = ctl("health", "--socket", os.path.join(_tmp, "none.sock"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect", r.stderr.decode())

    def test_policies(self):
        r = ctl("policies", "--url", _daemon.url)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = r.stdout.decode().splitlines()
        self.assertEqual([l.split()[0] for l in out[1:]],
                         ["dangerous", "harassment", "hate", "obscenity", "sexual", "violence"])
        self.assertIn("no", out[4].split())
        r = ctl("policies", "--socket", _daemon.sock, "--json")
        doc = json.loads(r.stdout)
        self.assertEqual(len(doc["policies"]), 6)
        self.assertEqual(doc["policies"][0]["threshold"], 0.5)

    def test_timeout(self):
        # A listener that accepts and never answers: the timeout fires with a message.
        import socket
        s = socket.socket(socket.AF_UNIX)
        p = os.path.join(_tmp, "mute.sock")
        s.bind(p)
        s.listen(1)
        try:
            r = ctl("health", "--socket", p, "--timeout", "300")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no response within 300 ms", r.stderr.decode())
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
