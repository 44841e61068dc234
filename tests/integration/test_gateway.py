"""Issue 13 end to end, against the real shieldd on the tiny random model: API keys (401 +
WWW-Authenticate, SIGHUP reload that drops a removed key and keeps the old keys on a broken file,
curl / the Python client / the C client with SHIELDD_API_KEY, /healthz open, metrics_auth, no key
in any log line, per-key counters), peer credentials (a second local user refused by allow_uids),
socket_mode / socket_group under socket activation, the refusal of a public TCP listener without
keys, `tcp:*:PORT` on IPv4 and IPv6, round-robin across keys (by order of completion), chat
`messages` (bit-identical to text/response; unmappable conversations are 400), the OpenAI
categories of /v1/moderations, the LiteLLM Generic Guardrail API and the chat-completions check
(agreeing with /v1/classify on `flagged` for 50 inputs), and bad input for each new endpoint.
"""
import concurrent.futures
import http.client
import json
import os
import pwd
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

import shieldd_client as sc

KEY_A = "sk-alice-0123456789abcdef"
KEY_B = "sk-bob-fedcba9876543210"
KEY_C = "sk-carol-55555555aaaaaaaa"

_tmp = None
_model = None


def setUpModule():
    global _tmp, _model
    _tmp = tempfile.mkdtemp(prefix="gateway-test-")
    os.chmod(_tmp, 0o755)  # the second local user must reach the sockets
    _model = make_model(_tmp)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


class Daemon:
    """shieldd on <dir>/s.sock (mode 0666) and, unless `tcp` is False, 127.0.0.1:<port>."""

    def __init__(self, *extra, policies=POLICIES, tcp=True, tcp_host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="d-", dir=_tmp)
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "s.sock")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.log = open(self.log_path, "w+b")
        lst = ["--listen", "unix:" + self.sock] + (
            ["--listen", "tcp:%s:%d" % (tcp_host, self.port)] if tcp else [])
        self.args = [SHIELDD, "-d", "-v", "-m", _model, "-p", policies,
                     "--socket-mode", "0666"] + lst + list(extra)
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120 * SLOW
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("shieldd exited %d: %s" % (self.proc.returncode,
                                                                self.stderr()))
            try:
                if self.request("GET", "/healthz", kind="unix")[0] == 200:
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
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, kind="tcp", key=None, headers=None):
        if kind == "unix":
            c = UnixHTTPConnection(self.sock, timeout=120 * SLOW)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120 * SLOW)
        try:
            h = dict(headers or {})
            if key is not None:
                h["Authorization"] = "Bearer " + key
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            if body is not None:
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def json(self, method, path, body=None, kind="tcp", key=None, headers=None):
        st, h, data = self.request(method, path, body, kind, key, headers)
        return st, json.loads(data.decode()) if data else None

    def metrics(self, key=None):
        st, _, data = self.request("GET", "/metrics", key=key)
        assert st == 200, data
        return data.decode()

    def metric(self, name, key=None):
        m = re.search(r"^%s (\S+)$" % re.escape(name), self.metrics(key), re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        self.log.close()
        return rc


def write_keys(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def wait_until(cond, seconds=20):
    deadline = time.time() + seconds * SLOW
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    return cond()


def copy_policies(dest):
    shutil.copytree(POLICIES, dest)
    return dest


def set_threshold(pdir, policy, value):
    path = os.path.join(pdir, policy + ".yaml")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"(?m)^threshold: .*$", "threshold: %r" % value, text)
    with open(path, "w") as f:
        f.write(text)


class AuthTest(unittest.TestCase):
    """One daemon with an api_keys file, reloaded with SIGHUP."""

    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="keys-", dir=_tmp)
        cls.keys = os.path.join(d, "keys")
        write_keys(cls.keys, ["# the callers", KEY_A + " alice", "", KEY_B + " bob"])
        cls.d = Daemon("--api-keys", cls.keys)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        assert rc == 0, cls.d.stderr()[-3000:]

    def assert401(self, st, h, data):
        self.assertEqual(st, 401, data)
        self.assertEqual(h.get("www-authenticate"), 'Bearer realm="shieldd"')
        self.assertTrue(h["content-type"].startswith("application/json"))
        body = json.loads(data)
        self.assertEqual(set(body["error"]), {"type", "message"})

    def test_keys(self):
        body = {"text": "hello with a key"}
        for kind in ("tcp", "unix"):
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind))
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind,
                                           key="sk-wrong-000000000000"))
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind,
                                           headers={"Authorization": "Basic " + KEY_A}))
            # A prefix of a right key, and a right key with a byte more, are wrong too.
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind,
                                           key=KEY_A[:-1]))
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind,
                                           key=KEY_A + "x"))
            st, _, data = self.d.request("POST", "/v1/classify", body, kind=kind, key=KEY_A)
            self.assertEqual(st, 200, data)
            # LiteLLM's api_key setting sends X-Api-Key.
            st, _, data = self.d.request("POST", "/v1/classify", body, kind=kind,
                                         headers={"X-Api-Key": KEY_B})
            self.assertEqual(st, 200, data)
            self.assert401(*self.d.request("POST", "/v1/classify", body, kind=kind,
                                           headers={"X-Api-Key": "sk-wrong-000000000000"}))
            # Health checks stay open; everything else needs the key.
            self.assertEqual(self.d.request("GET", "/healthz", kind=kind)[0], 200)
            self.assertEqual(self.d.request("GET", "/readyz", kind=kind)[0], 200)
            for path in ("/v1/policies", "/metrics"):
                self.assert401(*self.d.request("GET", path, kind=kind))
                self.assertEqual(self.d.request("GET", path, kind=kind, key=KEY_B)[0], 200)
            self.assert401(*self.d.request("POST", "/v1/moderations", {"input": "x"}, kind=kind))
        # curl, as a gateway would send it.
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "Authorization: Bearer " + KEY_B,
                            "-H", "Content-Type: application/json", "-d", json.dumps(body),
                            "http://127.0.0.1:%d/v1/classify" % self.d.port],
                           capture_output=True, timeout=60)
        self.assertEqual(p.stdout, b"200")
        # The Python client: the option and $SHIELDD_API_KEY.
        c = sc.Client("unix:" + self.d.sock, api_key=KEY_A)
        self.assertEqual(len(c.classify("python client").results), 4)
        with self.assertRaises(sc.ShielddError) as cm:
            sc.Client("unix:" + self.d.sock, api_key="sk-wrong-000000000000").classify("x")
        self.assertEqual(cm.exception.status, 401)
        old = os.environ.get("SHIELDD_API_KEY")
        os.environ["SHIELDD_API_KEY"] = KEY_B
        try:
            self.assertEqual(len(sc.Client("unix:" + self.d.sock).classify("env").results), 4)
        finally:
            if old is None:
                del os.environ["SHIELDD_API_KEY"]
            else:
                os.environ["SHIELDD_API_KEY"] = old
        # The C client (shieldctl) reads $SHIELDD_API_KEY.
        env = dict(os.environ, SHIELDD_API_KEY=KEY_A)
        env.pop("SHIELDD_URL", None)
        env.pop("SHIELDD_SOCKET", None)
        ok = subprocess.run([SHIELDCTL, "classify", "--socket", self.d.sock, "--json", "c client"],
                            capture_output=True, env=env, timeout=120)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(len(json.loads(ok.stdout)["results"]), 4)
        env["SHIELDD_API_KEY"] = "sk-wrong-000000000000"
        bad = subprocess.run([SHIELDCTL, "classify", "--socket", self.d.sock, "--json", "c"],
                             capture_output=True, env=env, timeout=120)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"401", bad.stderr + bad.stdout)
        # Per-key counters, by name, never the key.
        m = self.d.metrics(KEY_A)
        self.assertRegex(m, r'shieldd_key_requests_total\{key="alice"\} [1-9]')
        self.assertRegex(m, r'shieldd_key_requests_total\{key="bob"\} [1-9]')
        self.assertRegex(m, r'shieldd_key_prompt_tokens_total\{key="alice"\} [1-9]')
        self.assertRegex(m, r"shieldd_unauthorized_total [1-9]")
        for k in (KEY_A, KEY_B):
            self.assertNotIn(k, m)

    def test_sighup_reload(self):
        self.assertEqual(self.d.request("POST", "/v1/classify", {"text": "c"}, key=KEY_C)[0], 401)
        # Bob's line removed, Carol's added.
        write_keys(self.keys, [KEY_A + " alice", KEY_C + " carol"])
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.d.request(
            "GET", "/v1/policies", key=KEY_C)[0] == 200))
        st, h, data = self.d.request("POST", "/v1/classify", {"text": "b"}, key=KEY_B)
        self.assertEqual(st, 401, data)
        self.assertEqual(self.d.request("POST", "/v1/classify", {"text": "a"}, key=KEY_A)[0], 200)
        # A broken file keeps the keys loaded.
        write_keys(self.keys, [KEY_A + " alice", "short"])
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "api_keys reload failed" in self.d.stderr()))
        self.assertEqual(self.d.request("GET", "/v1/policies", key=KEY_C)[0], 200)
        self.assertEqual(self.d.request("GET", "/v1/policies", key=KEY_A)[0], 200)
        # Back to the start for the other tests.
        write_keys(self.keys, [KEY_A + " alice", KEY_B + " bob"])
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.d.request(
            "GET", "/v1/policies", key=KEY_B)[0] == 200))

    def test_zz_no_key_in_logs(self):
        """Runs last: every request above is in the debug log; no key is."""
        log = self.d.stderr()
        self.assertIn("SIGHUP", log)
        for k in (KEY_A, KEY_B, KEY_C, "short"):
            self.assertNotIn(k, log)
        self.assertNotIn("sk-", log)


class MetricsOpenTest(unittest.TestCase):
    def test_metrics_auth_false(self):
        d = tempfile.mkdtemp(prefix="keys-", dir=_tmp)
        keys = os.path.join(d, "keys")
        write_keys(keys, [KEY_A])
        dm = Daemon("--api-keys", keys, "--no-metrics-auth")
        try:
            self.assertEqual(dm.request("GET", "/metrics")[0], 200)
            self.assertEqual(dm.request("GET", "/v1/policies")[0], 401)
            # An unnamed key is known by its line.
            self.assertEqual(dm.request("GET", "/v1/policies", key=KEY_A)[0], 200)
            self.assertIn('shieldd_key_requests_total{key="key-1"} 1', dm.metrics())
        finally:
            self.assertEqual(dm.stop(), 0)

    def test_bad_key_files(self):
        d = tempfile.mkdtemp(prefix="keys-", dir=_tmp)
        cases = [([], "no keys"), (["short"], ":1: a key must be"),
                 ([KEY_A + " a", KEY_A + " b"], ":2: the same key"),
                 ([KEY_A + " bad/name"], ":1: bad key name"),
                 ([KEY_A + " a extra"], ":1: expected 'KEY [name]'")]
        for lines, want in cases:
            path = os.path.join(d, "k")
            write_keys(path, lines)
            p = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", POLICIES, "--api-keys", path],
                               capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 1, lines)
            self.assertIn(want.encode(), p.stderr)
            for line in lines:
                self.assertNotIn(line.split()[0].encode(), p.stderr)
        p = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", POLICIES, "--api-keys",
                            os.path.join(d, "missing")], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"No such file", p.stderr)


class PeerTest(unittest.TestCase):
    USER = "shieldd-peer-test"

    def other_user(self):
        try:
            return pwd.getpwnam(self.USER)
        except KeyError:
            pass
        if os.geteuid() != 0:
            self.fail("needs root to create a second local user (useradd)")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        self.USER], check=True, capture_output=True)
        return pwd.getpwnam(self.USER)

    def as_user(self, pw, sock):
        """GET /v1/policies on `sock` from a process running as `pw`; its HTTP status."""
        def drop():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--unix-socket", sock, "http://localhost/v1/policies"],
                           capture_output=True, preexec_fn=drop, timeout=60)
        return p.stdout.decode()

    def test_allow_uids(self):
        pw = self.other_user()
        d = Daemon("--allow-uids", str(os.geteuid()), tcp=False)
        try:
            self.assertEqual(d.request("GET", "/v1/policies", kind="unix")[0], 200)
            self.assertEqual(self.as_user(pw, d.sock), "403")
            self.assertIn("refused a Unix socket peer (uid %d" % pw.pw_uid, d.stderr())
        finally:
            self.assertEqual(d.stop(), 0)
        # Allowed by group instead.
        d = Daemon("--allow-uids", str(os.geteuid()), "--allow-gids", str(pw.pw_gid), tcp=False)
        try:
            self.assertEqual(self.as_user(pw, d.sock), "200")
        finally:
            self.assertEqual(d.stop(), 0)


class ListenerTest(unittest.TestCase):
    def test_public_tcp_refused_without_keys(self):
        port = free_port()
        p = subprocess.run([SHIELDD, "-d", "-m", _model, "-p", POLICIES, "--listen",
                            "tcp:0.0.0.0:%d" % port], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"refusing to serve a non-loopback TCP listener without api_keys",
                      p.stderr + p.stdout)
        # Explicitly allowed, it serves.
        d = Daemon("--allow-unauthenticated-tcp", tcp_host="0.0.0.0")
        try:
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0)
        # With api_keys it serves too.
        keys = os.path.join(tempfile.mkdtemp(dir=_tmp), "k")
        write_keys(keys, [KEY_A])
        d = Daemon("--api-keys", keys, tcp_host="0.0.0.0")
        try:
            self.assertEqual(d.request("GET", "/v1/policies", key=KEY_A)[0], 200)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_any_address_dual_stack(self):
        keys = os.path.join(tempfile.mkdtemp(dir=_tmp), "k")
        write_keys(keys, [KEY_A])
        d = Daemon("--api-keys", keys, tcp_host="*")
        try:
            def up(host, family):
                s = socket.socket(family)
                try:
                    s.settimeout(10 * SLOW)
                    s.connect((host, d.port))
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return s.recv(64).startswith(b"HTTP/1.1 200")
                finally:
                    s.close()
            self.assertTrue(up("127.0.0.1", socket.AF_INET), "tcp:* does not serve IPv4")
            self.assertTrue(up("::1", socket.AF_INET6), "tcp:* does not serve IPv6")
            self.assertIn("listening on tcp:*:%d" % d.port, d.stderr())
        finally:
            self.assertEqual(d.stop(), 0)

    def test_socket_perms_under_activation(self):
        activate = shutil.which("systemd-socket-activate")
        if activate is None:
            self.fail("systemd-socket-activate is missing (tools/setup.sh installs systemd)")
        sdir = tempfile.mkdtemp(dir=_tmp)
        sock = os.path.join(sdir, "act.sock")
        gid = pwd.getpwnam("nobody").pw_gid if os.geteuid() == 0 else os.getgid()
        p = subprocess.Popen([activate, "-l", sock, SHIELDD, "-d", "-m", _model, "-p", POLICIES,
                              "--socket-mode", "0640", "--socket-group", str(gid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_until(lambda: os.path.exists(sock), 30))
            c = UnixHTTPConnection(sock, timeout=120 * SLOW)
            c.request("GET", "/healthz")
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            st = os.stat(sock)
            self.assertEqual(st.st_mode & 0o777, 0o640)
            self.assertEqual(st.st_gid, gid)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(60)


class RoundRobinTest(unittest.TestCase):
    def test_flood_does_not_starve(self):
        keys = os.path.join(tempfile.mkdtemp(dir=_tmp), "k")
        write_keys(keys, [KEY_A + " bulk", KEY_B + " realtime"])
        # One request per worker batch, no cache: the queue order is the completion order.
        d = Daemon("--api-keys", keys, "--batch-tokens", "1", "--no-cache", "--max-inputs", "8",
                   "--no-metrics-auth")
        try:
            order = []
            lock = threading.Lock()

            def call(name, key, body):
                st, _, data = d.request("POST", "/v1/classify", body, key=key)
                with lock:
                    order.append(name)
                return st

            text = "bulk scan line %d %d " + "with some more words in it " * 6
            n_flood = 6
            pool = concurrent.futures.ThreadPoolExecutor(n_flood + 1)
            futs = [pool.submit(call, "A%d" % i, KEY_A,
                                {"inputs": [{"text": text % (i, k)} for k in range(8)]})
                    for i in range(n_flood)]
            self.assertTrue(wait_until(lambda: d.metric("shieldd_queue_depth") >= n_flood - 2))
            with lock:
                done_before = len(order)
            fb = pool.submit(call, "B", KEY_B, {"text": "a real-time check"})
            self.assertEqual(fb.result(), 200)
            self.assertEqual([f.result() for f in futs], [200] * n_flood)
            pool.shutdown()
            b_at = order.index("B")
            # Behind at most the one batch running when B arrived (FIFO would put it last).
            self.assertLessEqual(b_at - done_before, 1, order)
            self.assertLess(b_at, len(order) - 2, order)
            m = d.metrics()
            self.assertIn('shieldd_key_requests_total{key="bulk"} %d' % n_flood, m)
            self.assertIn('shieldd_key_requests_total{key="realtime"} 1', m)
            self.assertRegex(m, r'shieldd_key_computed_tokens_total\{key="realtime"\} [1-9]')
        finally:
            self.assertEqual(d.stop(), 0)


class ChatAndAdaptersTest(unittest.TestCase):
    """One daemon without a cache (every answer is computed) on a copy of the policies."""

    @classmethod
    def setUpClass(cls):
        cls.pdir = copy_policies(os.path.join(tempfile.mkdtemp(dir=_tmp), "policies"))
        cls.d = Daemon("--no-cache", "--max-inputs", "64", "--max-body-bytes", "65536",
                       policies=cls.pdir)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        assert rc == 0, cls.d.stderr()[-3000:]

    def classify(self, body):
        st, out = self.d.json("POST", "/v1/classify", body)
        self.assertEqual(st, 200, out)
        return out

    def test_messages_equal_text(self):
        u, a = "How do I get into my neighbour's house?", "Break a window at night."
        cases = [
            ([{"role": "user", "content": u}], {"text": u}),
            ([{"role": "system", "content": "You are helpful."}, {"role": "user", "content": u}],
             {"text": u}),
            ([{"role": "user", "content": u}, {"role": "assistant", "content": a}],
             {"text": u, "response": a}),
            ([{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"},
              {"role": "user", "content": [{"type": "text", "text": u}]}], {"text": u}),
            ([{"role": "user", "content": [{"type": "text", "text": "part one"},
                                           {"type": "text", "text": "part two"}]},
              {"role": "assistant", "content": a}],
             {"text": "part one\npart two", "response": a}),
        ]
        for msgs, plain in cases:
            got = self.classify({"messages": msgs})
            want = self.classify(plain)
            self.assertEqual(got["results"], want["results"], msgs)
            self.assertGreater(got["usage"]["computed_tokens"], 0)
            self.assertEqual(got["usage"]["prompt_tokens"], want["usage"]["prompt_tokens"])
        # In a batch, next to plain inputs, with its own policies.
        got = self.classify({"inputs": [{"messages": cases[2][0], "policies": ["hate"]},
                                        {"text": u}]})
        want = self.classify({"text": u, "response": a, "policies": ["hate"]})
        self.assertEqual(got["results"][0]["results"], want["results"])

    def test_scan_messages(self):
        """shieldctl scan: a JSONL "messages" field scores as the equivalent text/response."""
        d = tempfile.mkdtemp(dir=_tmp)
        chat, plain = os.path.join(d, "chat.jsonl"), os.path.join(d, "plain.jsonl")
        with open(chat, "w") as f, open(plain, "w") as g:
            for i in range(20):
                u, a = "question %d" % i, "answer %d" % i
                msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": u}]
                if i % 2:
                    msgs.append({"role": "assistant", "content": [{"type": "text", "text": a}]})
                f.write(json.dumps({"id": i, "messages": msgs}) + "\n")
                g.write(json.dumps({"id": i, "text": u, "resp": a if i % 2 else None}) + "\n")
            f.write(json.dumps({"id": 20, "messages": [{"role": "tool", "content": "x"}]}) + "\n")
        env = dict(os.environ)
        env.pop("SHIELDD_URL", None)
        env.pop("SHIELDD_SOCKET", None)
        outs = []
        for src in (chat, plain):
            out = src + ".out"
            p = subprocess.run([SHIELDCTL, "scan", "--socket", self.d.sock, "--in", src,
                                "--out", out], capture_output=True, env=env, timeout=300)
            self.assertIn(p.returncode, (0, 1), p.stderr)  # 1: the refused line is an error
            with open(out) as f:
                outs.append([json.loads(line) for line in f])
        chat_out, plain_out = outs
        self.assertEqual(len(chat_out), 21)
        self.assertIn("unknown role 'tool'", chat_out[20]["error"])
        # The plain file has no response field for even ids: score them prompt-only.
        for i in range(0, 20, 2):
            self.assertEqual(chat_out[i], plain_out[i])
        for i in range(1, 20, 2):
            st, want = self.d.json("POST", "/v1/classify",
                                   {"text": "question %d" % i, "response": "answer %d" % i})
            self.assertEqual([r["probability"] for r in chat_out[i]["results"]],
                             [r["probability"] for r in want["results"]])

    def test_unmappable_messages(self):
        bad = [
            ([], "non-empty array"),
            ("hello", "non-empty array"),
            ([{"role": "system", "content": "only a system prompt"}], "no user turn"),
            ([{"role": "assistant", "content": "a reply alone"}], "no user turn"),
            ([{"role": "user", "content": "x"}, {"role": "system", "content": "y"}],
             "must end with a user or an assistant turn"),
            ([{"role": "tool", "content": "x"}], "unknown role 'tool'"),
            ([{"role": "user", "content": [{"type": "image_url",
                                            "image_url": {"url": "http://x/y.png"}}]}],
             "only text parts"),
            ([{"role": "user", "content": ""}], "'content' is empty"),
            ([{"role": "user", "content": 5}], "must be a string or an array"),
            ([{"role": "user"}], "must be a string or an array"),
            ([{"content": "x"}], "string 'role'"),
            ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "must be a string"),
        ]
        for msgs, words in bad:
            for body in ({"messages": msgs}, {"inputs": [{"messages": msgs}]}):
                st, out = self.d.json("POST", "/v1/classify", body)
                self.assertEqual(st, 400, (body, out))
                self.assertIn(words, out["error"]["message"])
        st, out = self.d.json("POST", "/v1/classify", {"text": "x", "messages": [
            {"role": "user", "content": "x"}]})
        self.assertEqual(st, 400)
        self.assertIn("not both", out["error"]["message"])

    def test_openai_categories(self):
        st, mod = self.d.json("POST", "/v1/moderations", {"input": "some text to check"})
        self.assertEqual(st, 200)
        _, cls = self.d.json("POST", "/v1/classify", {"text": "some text to check"})
        r = mod["results"][0]
        by = {x["policy"]: x for x in cls["results"]}
        for cat, pol in (("hate", "hate"), ("harassment", "harassment"), ("sexual", "sexual"),
                         ("illicit", "dangerous"), ("illicit/violent", "dangerous")):
            self.assertEqual(r["categories"][cat], by[pol]["violation"], cat)
            self.assertEqual(r["category_scores"][cat], by[pol]["probability"], cat)
            self.assertEqual(r["category_applied_input_types"][cat], ["text"])
        # Our own policy names are there too; categories no policy answers for are absent.
        self.assertIn("dangerous", r["categories"])
        for absent in ("self-harm", "violence", "hate/threatening", "sexual/minors"):
            self.assertNotIn(absent, r["categories"])
            self.assertNotIn(absent, r["category_scores"])
        # The (disabled) violence policy answers for "violence" when asked for.
        _, mod = self.d.json("POST", "/v1/moderations", {"input": "x", "policies": ["violence"]})
        self.assertIn("violence", mod["results"][0]["category_scores"])
        self.assertNotIn("hate", mod["results"][0]["category_scores"])

    def test_adapters_agree_with_classify(self):
        texts = ["input number %d: %s" % (i, w) for i, w in enumerate(
            ("hello", "I will hurt you", "buy cheap pills", "the weather is nice",
             "you people are vermin") * 10)]
        probs = [max(r["probability"] for r in self.classify({"text": t})["results"])
                 for t in texts]
        # A threshold at the median gives both outcomes among the 50.
        med = sorted(probs)[len(probs) // 2]
        for p in ("dangerous", "harassment", "hate", "sexual"):
            set_threshold(self.pdir, p, med)
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in self.d.stderr()))
        flagged = []
        for t in texts:
            want = self.classify({"text": t})["flagged"]
            flagged.append(want)
            st, g = self.d.json("POST", "/beta/litellm_basic_guardrail_api",
                                {"texts": [t], "input_type": "request",
                                 "litellm_call_id": "c1", "request_data": {"user": "u"},
                                 "images": [], "unknown_extra": {"x": 1}})
            self.assertEqual(st, 200, g)
            self.assertEqual(g["action"], "BLOCKED" if want else "NONE")
            if want:
                self.assertIn("violates", g["blocked_reason"])
            st, h, data = self.d.request("POST", "/v1/check/chat/completions", {
                "model": "gpt-4o", "stream": False, "temperature": 0.2,
                "messages": [{"role": "system", "content": "be nice"},
                             {"role": "user", "content": t}]})
            self.assertEqual(st, 403 if want else 200, data)
            # Envoy's ext_authz appends the client's path to path_prefix.
            st2, _, _ = self.d.request("POST", "/v1/check/chat/completions/v1/chat/completions", {
                "messages": [{"role": "user", "content": t}]})
            self.assertEqual(st2, st)
            if want:
                err = json.loads(data)["error"]
                self.assertEqual(err["type"], "policy_violation")
                names = h["x-shieldd-flagged-policies"].split(",")
                self.assertTrue(names)
                self.assertEqual(err["policies"], h["x-shieldd-flagged-policies"])
            else:
                self.assertNotIn("x-shieldd-flagged-policies", h)
                self.assertNotIn("x-accel-redirect", h)
        self.assertIn(True, flagged)
        self.assertIn(False, flagged)
        # nginx's replay of an allowed request (clients/gateway/nginx-check.conf).
        t = texts[flagged.index(False)]
        body = {"messages": [{"role": "user", "content": t}]}
        for to, want in (("/_llm", "/_llm"), ("@llm", "@llm"), ("no-slash", None)):
            st, h, _ = self.d.request("POST", "/v1/check/chat/completions", body,
                                      headers={"X-Shieldd-Accel-Redirect": to})
            self.assertEqual(st, 200)
            self.assertEqual(h.get("x-accel-redirect"), want)
        t = texts[flagged.index(True)]
        st, h, _ = self.d.request("POST", "/v1/check/chat/completions",
                                  {"messages": [{"role": "user", "content": t}]},
                                  headers={"X-Shieldd-Accel-Redirect": "/_llm"})
        self.assertEqual(st, 403)
        self.assertNotIn("x-accel-redirect", h)
        # A response scan with the conversation; several texts are one verdict.
        st, g = self.d.json("POST", "/beta/litellm_basic_guardrail_api", {
            "texts": ["reply one", "reply two"], "input_type": "response",
            "structured_messages": [{"role": "user", "content": "question"}]})
        self.assertEqual(st, 200)
        a = self.classify({"text": "question", "response": "reply one"})["flagged"]
        b = self.classify({"text": "question", "response": "reply two"})["flagged"]
        self.assertEqual(g["action"], "BLOCKED" if a or b else "NONE")
        # structured_messages in a shape we cannot map: the texts are classified instead.
        st, g = self.d.json("POST", "/beta/litellm_basic_guardrail_api", {
            "texts": [texts[0]], "input_type": "request",
            "structured_messages": [{"role": "user", "content": [{"type": "input_text",
                                                                  "text": texts[0]}]}]})
        self.assertEqual(st, 200, g)
        self.assertEqual(g["action"], "BLOCKED" if flagged[0] else "NONE")

    def test_bad_input_new_endpoints(self):
        lit = "/beta/litellm_basic_guardrail_api"
        chk = "/v1/check/chat/completions"
        many = ["t%d" % i for i in range(65)]
        cases = [
            (lit, {"texts": "not a list"}, 400, "'texts' must be an array"),
            (lit, {"texts": []}, 400, "'texts' is empty"),
            (lit, {}, 400, "'texts' is empty"),
            (lit, {"texts": [""]}, 400, "texts[0]: must be a non-empty string"),
            (lit, {"texts": [3]}, 400, "texts[0]: must be a non-empty string"),
            (lit, {"texts": ["x"], "input_type": "sideways"}, 400, "'input_type'"),
            (lit, {"structured_messages": [{"role": "bot", "content": "x"}]},
             400, "unknown role"),
            (lit, {"texts": many}, 413, "max_inputs"),
            (chk, {"model": "m"}, 400, "missing 'messages'"),
            (chk, {"messages": "hi"}, 400, "non-empty array"),
            (chk, {"messages": []}, 400, "non-empty array"),
            (chk, {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, 400,
             "only text parts"),
            (chk, [1, 2], 400, "must be a JSON object"),
            ("/v1/classify", {"inputs": [{"messages": [{"role": "user", "content": "x"}]}] * 65},
             413, "max_inputs"),
        ]
        for path, body, status, words in cases:
            st, out = self.d.json("POST", path, body)
            self.assertEqual(st, status, (path, body, out))
            self.assertIn(words, out["error"]["message"], (path, body))
        for path in (lit, chk):
            st, _, data = self.d.request("POST", path, b'{"texts": ["\xff\xfe"]}')
            self.assertEqual(st, 400)
            self.assertIn(b"not valid UTF-8", data)
            st, _, data = self.d.request("POST", path, b"x" * 70000)
            self.assertEqual(st, 413)
            st, _, data = self.d.request("GET", path)
            self.assertEqual(st, 405)
        # The daemon still serves.
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
