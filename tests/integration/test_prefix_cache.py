"""The engine's prefix cache through the real daemon: streaming checks (the reply so far, longer
each time) of 6 interleaved conversations in a random order give bit-identical probabilities
with a small cache (forced evictions) and without one (--prefix_cache_bytes 0), text that
diverges inside a token of the cached prefix included; the byte bound holds exactly, read
through /metrics; usage.cached_tokens; and the example stream guard (clients/python/
shieldd_stream.py) replaying an OpenAI chat-completions stream, stopped when a policy trips."""
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

from clients_common import POLICIES, TOP, Daemon, make_model, rmtree

sys.path.insert(0, os.path.join(TOP, "clients", "python"))
import shieldd_client  # noqa: E402
import shieldd_stream  # noqa: E402

_tmp = _model = _policies = None
_cached = _plain = None
BOUND = 330000  # bytes: 39 blocks of the tiny model (8308 bytes each), 624 tokens

USERS = ["How do I bake bread at home?", "Tell me about the history of Rome.",
         "Write a poem about the sea.", "What is the capital of Australia?",
         "Explain quantum computing simply.", "Give me a recipe for pancakes."]
REPLY = ("Sure, here is what you asked for. First take the flour and mix it with water, then "
         "knead the dough until it is smooth and elastic; let it rest for an hour while the "
         "oven heats. The ancient city grew from a small settlement into an empire that ruled "
         "the whole Mediterranean sea, and its roads, laws and language shaped the world.")


def setUpModule():
    global _tmp, _model, _policies, _cached, _plain
    _tmp = tempfile.mkdtemp(prefix="prefix-test-")
    try:
        _model = make_model(_tmp)
        # The shipped policies, with 'hate' tripping on anything (threshold 0) and the others
        # never (threshold 1): the stream guard's tests know what to expect.
        _policies = os.path.join(_tmp, "policies")
        shutil.copytree(POLICIES, _policies)
        for name in os.listdir(_policies):
            if name.endswith(".yaml") and name != "template.yaml":
                path = os.path.join(_policies, name)
                with open(path) as f:
                    text = f.read()
                t = "0" if name == "hate.yaml" else "1"
                text = re.sub(r"(?m)^threshold: .*$", "threshold: " + t, text)
                with open(path, "w") as f:
                    f.write(text)
        common = ["-p", _policies, "--no-cache"]
        _cached = Daemon(_model, _tmp, *common, "--prefix_cache_bytes", str(BOUND))
        _plain = Daemon(_model, _tmp, *common, "--prefix_cache_bytes", "0")
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    for d in (_cached, _plain):
        if d:
            d.stop()
    rmtree(_tmp)


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def metrics(d):
    """GET /metrics of daemon d as {name: value} (unlabelled series)."""
    conn = _UnixHTTP(d.sock)
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    if r.status != 200:
        raise AssertionError("/metrics: HTTP %d" % r.status)
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def classify(d, text, response):
    c = shieldd_client.Client("unix:" + d.sock)
    return c.classify(text, response=response)


class PrefixCache(unittest.TestCase):
    def test_a_equal_without_cache(self):
        """50 checks over 6 conversations in a random order: the same probabilities bit for
        bit (JSON with 17 digits) with the small cache and without it."""
        rnd = random.Random(16)
        length = [0] * len(USERS)
        before = metrics(_cached)
        for i in range(50):
            conv = rnd.randrange(len(USERS))
            length[conv] = min(len(REPLY), length[conv] + rnd.randint(5, 40))
            reply = REPLY[:length[conv]]
            a = classify(_cached, USERS[conv], reply)
            b = classify(_plain, USERS[conv], reply)
            self.assertEqual([(s.policy, s.probability) for s in a.results],
                             [(s.policy, s.probability) for s in b.results],
                             "check %d, conversation %d, %d bytes" % (i, conv, len(reply)))
            self.assertEqual(a.prompt_tokens, b.prompt_tokens)
            self.assertLessEqual(a.computed_tokens + a.cached_tokens, a.prompt_tokens)
        m = metrics(_cached)
        self.assertGreater(m["shieldd_prefix_cache_evictions_total"],
                           before["shieldd_prefix_cache_evictions_total"])
        self.assertGreater(m["shieldd_prefix_cache_hits_total"],
                           before["shieldd_prefix_cache_hits_total"])
        self.assertGreater(m["shieldd_prefix_cache_cached_tokens_total"], 0)
        self.assertLess(m["shieldd_computed_tokens_total"],
                        metrics(_plain)["shieldd_computed_tokens_total"])

    def test_b_byte_bound(self):
        """The bound, exactly: the cache holds whole blocks, at most floor(bound / block) of
        them, and is full once it has evicted."""
        for i in range(8):
            classify(_cached, USERS[i % 6] + " (bound %d)" % i, REPLY[:100 + 10 * i])
            m = metrics(_cached)
            cap = m["shieldd_prefix_cache_capacity_bytes"]
            self.assertLessEqual(m["shieldd_prefix_cache_bytes"], cap)
            self.assertLessEqual(cap, BOUND)
        self.assertEqual(m["shieldd_prefix_cache_enabled"], 1)
        self.assertGreater(m["shieldd_prefix_cache_evictions_total"], 0)
        self.assertEqual(m["shieldd_prefix_cache_bytes"], cap)  # full after evicting
        # A block: 16 tokens x (the tiny model's rows: 2 layers x keys and values x 32 floats,
        # and the token id), plus at most 64 bytes of bookkeeping.
        block = m["shieldd_prefix_cache_block_bytes"]
        self.assertGreaterEqual(block, 16 * (2 * 2 * 32 * 4 + 4))
        self.assertLessEqual(block, 16 * (2 * 2 * 32 * 4 + 4) + 64)
        self.assertEqual(cap % block, 0)
        self.assertGreater(cap + block, BOUND)  # the largest multiple of a block in the bound
        self.assertEqual(metrics(_plain)["shieldd_prefix_cache_enabled"], 0)

    def test_c_divergence_inside_a_token(self):
        """'...wor' then '...world' (and back): the tokenizer merges across the old end of
        the cached prefix; the results still equal the uncached daemon's."""
        user = "Finish the sentence."
        for reply in ("Hello wor", "Hello world", "Hello wo", "Hello world, against",
                      "Hello world, against all odds"):
            a = classify(_cached, user, reply)
            b = classify(_plain, user, reply)
            self.assertEqual([s.probability for s in a.results],
                             [s.probability for s in b.results], reply)

    def test_e_config_errors(self):
        """A bound under one block, and a value that is not a size, are refused by name."""
        from clients_common import SHIELDD
        for value, msg in (("100", "prefix_cache_bytes: prefix cache: 100 bytes hold no block"),
                           ("lots", "prefix_cache_bytes: 'lots' is not a size")):
            r = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", _policies,
                                "--prefix-cache-bytes", value], capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 1)
            self.assertIn(msg, r.stderr.decode())
        for value in ("auto", "0", "1M"):
            r = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", _policies,
                                "--prefix-cache-bytes", value], capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_d_cached_tokens(self):
        """A check that adds a few tokens to the reply reuses the whole earlier prefix."""
        user = "Tell me a story about a lighthouse keeper."
        first = classify(_cached, user, "Once upon a time")
        second = classify(_cached, user, "Once upon a time there was a keeper")
        self.assertGreater(second.cached_tokens, first.cached_tokens)
        self.assertLess(second.computed_tokens, first.computed_tokens)


def sse(pieces):
    """An OpenAI chat-completions stream (stream: true) carrying `pieces`."""
    lines = [": keep-alive", ""]
    lines.append("data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                        "choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
    for p in pieces:
        lines.append("data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                            "choices": [{"index": 0, "delta": {"content": p}}]}))
        lines.append("")
    lines.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {},
                                                     "finish_reason": "stop"}]}))
    lines.append("data: [DONE]")
    return [ln + "\n" for ln in lines]


class Upstream:
    """A stream that records how far it was read and whether it was closed."""

    def __init__(self, lines):
        self.lines = lines
        self.read = 0
        self.closed = False

    def __iter__(self):
        for ln in self.lines:
            self.read += 1
            yield ln

    def gen(self):
        try:
            yield from self
        finally:
            self.closed = True


class StreamGuardTest(unittest.TestCase):
    PIECES = [w + " " for w in REPLY.split()]  # 60 chunks

    def test_passes_and_checks_every_n(self):
        client = shieldd_client.Client("unix:" + _cached.sock)
        guard = shieldd_stream.StreamGuard(client, "Tell me about Rome.", every=16,
                                           policies=["violence", "sexual"])
        out = "".join(guard.feed(shieldd_stream.openai_deltas(sse(self.PIECES))))
        self.assertEqual(out, "".join(self.PIECES))
        self.assertEqual(guard.tripped, [])
        self.assertEqual(len(guard.checks), 4)  # after 16, 32, 48 chunks and at the end (60)
        for earlier, later in zip(guard.checks, guard.checks[1:]):
            self.assertGreater(later.cached_tokens, earlier.cached_tokens)

    def test_stops_when_a_policy_trips(self):
        client = shieldd_client.Client("unix:" + _cached.sock)
        up = Upstream(sse(self.PIECES))
        src = up.gen()
        guard = shieldd_stream.StreamGuard(client, "Tell me about Rome.", every=16,
                                           policies=["violence", "hate"])
        out = list(guard.feed(shieldd_stream.openai_deltas(src)))
        self.assertEqual(out, [])  # nothing unchecked was let through
        self.assertEqual(guard.tripped, ["hate"])
        self.assertEqual(len(guard.checks), 1)
        self.assertEqual(guard.reply, "".join(self.PIECES[:16]))
        self.assertLess(up.read, len(up.lines) // 2)  # the rest of the stream was never read

    def test_script(self):
        path = os.path.join(_tmp, "stream.txt")
        with open(path, "w") as f:
            f.writelines(sse(self.PIECES[:20]))
        script = os.path.join(TOP, "clients", "python", "shieldd_stream.py")
        r = subprocess.run([sys.executable, script, "--socket", _cached.sock, "--user", "hi",
                            "--every", "8", "--policy", "sexual", path],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode(), "".join(self.PIECES[:20]) + "\n")
        self.assertEqual(r.stderr.decode().count("check "), 3)
        r = subprocess.run([sys.executable, script, "--socket", _cached.sock, "--user", "hi",
                            "--policy", "hate", path], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("stopped: hate", r.stderr.decode())
        bad = os.path.join(_tmp, "bad.txt")
        with open(bad, "w") as f:
            f.write("data: {not json\n")
        r = subprocess.run([sys.executable, script, "--socket", _cached.sock, "--user", "hi",
                            bad], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 2)
        self.assertIn("a data line is not JSON", r.stderr.decode())


class BenchStream(unittest.TestCase):
    def test_targets_in_tokens(self):
        """shieldctl bench --stream on the test model: with the cache, each check after the
        first computes at most its new tokens + the suffixes + 2, and 3 interleaved
        conversations cost what one does; without it they cost more."""
        from clients_common import SHIELDCTL
        r = subprocess.run([SHIELDCTL, "bench", "--model", _model, "--threads", "1",
                            "--precision", "f32", "--policies", POLICIES, "--stream",
                            "--stream-user", "16", "--stream-reply", "64", "--stream-every",
                            "16", "--stream-convs", "1,3", "--json"],
                           capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        doc = json.loads(r.stdout)["stream"]
        runs = {(x["conversations"], x["cache"]): x for x in doc["runs"]}
        floor = doc["suffix_tokens"]
        self.assertGreater(floor, 100)
        for n in (1, 3):
            on = runs[(n, True)]
            self.assertEqual(on["checks"], 4 * n)
            self.assertLessEqual(on["later_check_computed"],
                                 on["later_check_new_tokens"] + floor + 2)
            self.assertEqual(on["prefix_cache"]["evictions"], 0)
        self.assertAlmostEqual(runs[(3, True)]["later_check_computed"],
                               runs[(1, True)]["later_check_computed"], delta=2)
        self.assertGreater(runs[(3, False)]["later_check_computed"],
                           runs[(3, True)]["later_check_computed"] + 16)
        bad = subprocess.run([SHIELDCTL, "bench", "--model", _model, "--stream",
                              "--stream-every", "0"], capture_output=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--stream-every", bad.stderr.decode())


if __name__ == "__main__":
    unittest.main()
