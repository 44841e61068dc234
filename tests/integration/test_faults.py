"""Faults the daemon must survive or report (issue 18, item 4; the scan faults are in
test_scan.py): the model file truncated in place while serving (SIGBUS: one clear line, then
death by the signal) or replaced by rename (harmless), out of memory at load (RLIMIT_AS: a
clear error and exit 1 at every limit, never a crash), SIGPIPE (ignored: a client that resets
under a large reply), EINTR (a storm of signals while requests run), and policy reloads under
load (no reply ever mixes two policy sets)."""
import concurrent.futures
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import test_daemon
from clients_common import POLICIES, SHIELDD, SLOW, make_model
from test_daemon import Daemon, wait_until

_tmp = None
_model = None


def setUpModule():
    global _tmp, _model
    _tmp = tempfile.mkdtemp(prefix="shieldd-faults-")
    _model = make_model(_tmp)
    test_daemon._tmp = _tmp
    test_daemon._model = _model


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


def own_model(name):
    """A private copy of the model folder (the daemon maps it: tests may break it)."""
    d = os.path.join(_tmp, name)
    shutil.copytree(_model, d)
    return d


def classify(d, text):
    return d.request("POST", "/v1/classify", {"text": text})


class ModelFileTest(unittest.TestCase):
    def start(self, model):
        test_daemon._model = model
        try:
            return Daemon()
        finally:
            test_daemon._model = _model

    def test_truncated_in_place(self):
        model = own_model("trunc")
        d = self.start(model)
        self.assertEqual(classify(d, "before")[0], 200)
        os.truncate(os.path.join(model, "model.safetensors"), 4096)
        try:
            classify(d, "after the truncation")
        except (OSError, http_exceptions()):
            pass
        rc = d.proc.wait(30 * SLOW)
        log = d.stderr()
        d.log.close()
        self.assertEqual(rc, -signal.SIGBUS, log[-2000:])
        self.assertRegex(log, r"shieldd: fatal: SIGBUS reading 0x[0-9a-f]+: a mapped file "
                              r"\(the model's weights or the pack cache\) was truncated")

    def test_replaced_by_rename(self):
        model = own_model("renamed")
        d = self.start(model)
        try:
            st, _, before = classify(d, "same answer")
            self.assertEqual(st, 200)
            path = os.path.join(model, "model.safetensors")
            shutil.copy(path, path + ".new")
            with open(path + ".new", "r+b") as f:  # the new file differs
                f.seek(-64, os.SEEK_END)
                f.write(b"\0" * 64)
            os.rename(path + ".new", path)
            st, _, after = classify(d, "same answer, after the rename")
            self.assertEqual(st, 200)
            self.assertIsNone(d.proc.poll())
        finally:
            self.assertEqual(d.stop(), 0, d.stderr()[-2000:])


def http_exceptions():
    import http.client
    return http.client.HTTPException


class OutOfMemoryTest(unittest.TestCase):
    def test_rlimit_as_at_load(self):
        # From "cannot map the weights" to "loaded": every limit gives a clear error and exit
        # status 1, or a daemon that serves; never a crash.
        sock = os.path.join(_tmp, "oom.sock")
        seen = set()
        for mib in (60, 80, 100, 129, 130, 131, 200):
            lim = mib << 20
            p = subprocess.Popen([SHIELDD, "-d", "-m", _model, "-p", POLICIES, "--listen",
                                  "unix:" + sock],
                                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                                       (lim, lim)),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                out, _ = p.communicate(timeout=8 * SLOW)
                text = out.decode(errors="replace")
                self.assertEqual(p.returncode, 1, (mib, text[-500:]))
                self.assertRegex(text, r"error: (model: .*(out of memory|Cannot allocate memory)"
                                       r"|scheduler: cannot start its worker thread \(out of "
                                       r"memory or of threads\?\): Resource temporarily)", mib)
                seen.add("error")
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=30)
                self.assertEqual(p.returncode, 0, mib)
                seen.add("served")
        self.assertEqual(seen, {"error", "served"})


class SignalsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pol = os.path.join(_tmp, "policies-sig")
        shutil.copytree(POLICIES, cls.pol)
        cls.d = Daemon(policies=cls.pol)

    @classmethod
    def tearDownClass(cls):
        assert cls.d.stop() == 0, cls.d.stderr()[-2000:]

    def test_sigpipe_ignored(self):
        with open("/proc/%d/status" % self.d.proc.pid) as f:
            ign = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", f.read(), re.M).group(1), 16)
        self.assertTrue(ign & (1 << (signal.SIGPIPE - 1)))
        # Clients that reset while a large reply is on its way.
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.d.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)

    def test_signal_storm(self):
        # SIGHUP every millisecond while requests run: every call interrupted by a signal
        # (EINTR) is resumed; nothing fails.
        stop = threading.Event()
        sent = [0]

        def storm():
            while not stop.is_set():
                self.d.proc.send_signal(signal.SIGHUP)
                sent[0] += 1
                time.sleep(0.001)

        t = threading.Thread(target=storm)
        t.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                got = list(ex.map(lambda i: classify(self.d, "storm %d" % (i % 7))[0],
                                  range(120)))
        finally:
            stop.set()
            t.join()
        self.assertEqual(got, [200] * 120)
        self.assertGreater(sent[0], 50)
        self.assertIsNone(self.d.proc.poll())


class ReloadTest(unittest.TestCase):
    def test_no_reply_mixes_two_sets(self):
        # Two policy sets that differ in every threshold; the policy folder is a symlink
        # switched between them (atomically, by rename) before each SIGHUP.
        sets = {}
        for name, thr in (("a", "0.3"), ("b", "0.7")):
            d = os.path.join(_tmp, "set-" + name)
            shutil.copytree(POLICIES, d)
            for f in os.listdir(d):
                p = os.path.join(d, f)
                with open(p) as fh:
                    text = fh.read()
                with open(p, "w") as fh:
                    fh.write(re.sub(r"^threshold: .*$", "threshold: " + thr, text, flags=re.M))
            sets[name] = d
        link = os.path.join(_tmp, "policies-link")
        os.symlink(sets["a"], link)
        d = Daemon(policies=link)
        stop = threading.Event()
        flips = [0]

        def flipper():
            while not stop.is_set():
                tmp = link + ".tmp"
                os.symlink(sets["b" if flips[0] % 2 == 0 else "a"], tmp)
                os.rename(tmp, link)
                d.proc.send_signal(signal.SIGHUP)
                flips[0] += 1
                time.sleep(0.02)

        t = threading.Thread(target=flipper)
        t.start()
        try:
            def one(i):
                st, _, data = d.request("POST", "/v1/classify",
                                        {"inputs": [{"text": "reload %d" % i},
                                                    {"text": "and %d" % (i % 5)}]})
                self.assertEqual(st, 200)
                return {r["threshold"] for x in json.loads(data)["results"] for r in x["results"]}

            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                seen = list(ex.map(one, range(150)))
        finally:
            stop.set()
            t.join()
            rc = d.stop()
        self.assertEqual(rc, 0, d.stderr()[-2000:])
        for s in seen:
            self.assertIn(s, ({0.3}, {0.7}), "a reply mixed two policy sets")
        self.assertGreater(flips[0], 10)
        self.assertIn({0.3}, seen)
        self.assertIn({0.7}, seen)


if __name__ == "__main__":
    unittest.main()
