"""shieldctl scan end to end, against the real shieldd and in-process (--model): 2000 items
both ways give byte-identical output; kill -9 in the middle then resume gives every id once, in
order; JSONL/CSV/text/stdin inputs, malformed lines, CSV quoting with embedded newlines, empty
input, missing fields, --shard, and a daemon that goes away."""
import json
import os
import signal
import subprocess
import time
import unittest

from clients_common import SHIELDCTL, SLOW, ctl, start, stop

_tmp = None
_model = None
_daemon = None
_ref = None      # the in-process output of the 2000-item input


def setUpModule():
    global _tmp, _model, _daemon
    _tmp, _model, _daemon = start("scan-test-")


def tearDownModule():
    stop(_tmp, _daemon)


def path(name):
    return os.path.join(_tmp, name)


def write(name, data):
    p = path(name)
    with open(p, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return p


def slurp(p):
    with open(p, "rb") as f:
        return f.read()


def lines(p):
    with open(p, "rb") as f:
        return [json.loads(l) for l in f.read().decode().splitlines()]


TOPICS = ["cats", "weapons", "my neighbour", "cooking", "\u00e9t\u00e9 \u2603", "a\nb"]


def big_input():
    p = path("big.jsonl")
    if not os.path.exists(p):
        with open(p, "w") as f:
            for i in range(2000):
                f.write(json.dumps({"id": "item-%d" % i,
                                    "text": "message %d about %s" % (i, TOPICS[i % 6])}) + "\n")
    return p


def reference():
    global _ref
    if _ref is None:
        out = path("ref.jsonl")
        r = ctl("scan", "--in", big_input(), "--out", out, "--model", _model)
        assert r.returncode == 0, r.stderr.decode()
        with open(out, "rb") as f:
            _ref = f.read()
    return _ref


class ScanDaemonVsInProcess(unittest.TestCase):
    def test_2000_items_identical(self):
        ref = reference()
        out = path("daemon.jsonl")
        r = ctl("scan", "--in", big_input(), "--out", out, "--socket", _daemon.sock,
                "--concurrency", "4")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(out, "rb") as f:
            got = f.read()
        self.assertEqual(got, ref)
        rows = [json.loads(l) for l in got.decode().splitlines()]
        self.assertEqual([x["id"] for x in rows], ["item-%d" % i for i in range(2000)])
        for x in rows[:5]:
            self.assertEqual(sorted(x), ["flagged", "id", "results"])
            self.assertEqual([s["policy"] for s in x["results"]],
                             ["dangerous", "harassment", "hate", "sexual"])
            self.assertEqual(sorted(x["results"][0]), ["policy", "probability", "violation"])
        # The summary on stderr (not a TTY: no progress bar, no carriage returns).
        err = r.stderr.decode()
        self.assertIn("2000 items", err)
        self.assertIn("0 errors", err)
        self.assertIn("tokens/s", err)
        self.assertIn("hate", err)
        self.assertNotIn("\r", err)

    def test_tcp_and_policy_subset(self):
        inp = write("sub.jsonl", "".join(json.dumps({"id": i, "text": "t %d" % i}) + "\n"
                                         for i in range(20)))
        a, b = path("sub-d.jsonl"), path("sub-m.jsonl")
        r = ctl("scan", "--in", inp, "--out", a, "--url", _daemon.url, "--policy", "hate",
                "--policy", "violence", "--concurrency", "3")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        r = ctl("scan", "--in", inp, "--out", b, "--model", _model, "--policy", "hate",
                "--policy", "violence")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(a), slurp(b))
        rows = lines(a)
        self.assertEqual([x["id"] for x in rows], list(range(20)))
        self.assertEqual([s["policy"] for s in rows[0]["results"]], ["hate", "violence"])

    def test_env_endpoint(self):
        inp = write("env.txt", "one\ntwo\n")
        out = path("env.jsonl")
        r = ctl("scan", "--in", inp, "--out", out, env={"SHIELDD_SOCKET": _daemon.sock})
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual([x["id"] for x in lines(out)], [1, 2])


class Resume(unittest.TestCase):
    def test_kill9_then_resume(self):
        ref = reference()
        out = path("killed.jsonl")
        p = subprocess.Popen([SHIELDCTL, "scan", "--in", big_input(), "--out", out,
                              "--socket", _daemon.sock, "--concurrency", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120 * SLOW
        while time.time() < deadline:
            if os.path.exists(out) and os.path.getsize(out) > len(ref) // 3:
                break
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        size = os.path.getsize(out)
        self.assertGreater(size, 0)
        self.assertLess(size, len(ref), "the scan finished before it could be killed")
        # Whatever kill -9 left, plus a torn line as a write cut in the middle would leave.
        with open(out, "ab") as f:
            f.write(b'{"id":"item-9')
        r = ctl("scan", "--in", big_input(), "--out", out, "--socket", _daemon.sock)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(out), ref)
        # Once more: nothing left to do, nothing added.
        r = ctl("scan", "--in", big_input(), "--out", out, "--model", _model)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("0 items (2000 resumed", r.stderr.decode())
        self.assertEqual(slurp(out), ref)

    def test_shards_resume_and_cover(self):
        inp = write("sh.txt", "".join("line %d\n" % i for i in range(25)))
        full = path("sh-full.jsonl")
        self.assertEqual(ctl("scan", "--in", inp, "--out", full, "--model", _model).returncode, 0)
        whole = slurp(full).splitlines(True)
        for i in range(3):
            o = path("sh-%d.jsonl" % i)
            r = ctl("scan", "--in", inp, "--out", o, "--socket", _daemon.sock, "--shard",
                    "%d/3" % i)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(slurp(o).splitlines(True), whole[i::3])
        # A shard resumed in its own order.
        o = path("sh-1.jsonl")
        keep = whole[1::3][:4]
        with open(o, "wb") as f:
            f.write(b"".join(keep) + b'{"id": 1')
        r = ctl("scan", "--in", inp, "--out", o, "--model", _model, "--shard", "1/3")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(o).splitlines(True), whole[1::3])


class Inputs(unittest.TestCase):
    def scan(self, name, data, *args, ok=True):
        inp = write(name, data)
        out = path(name + ".out")
        if os.path.exists(out):
            os.unlink(out)
        r = ctl("scan", "--in", inp, "--out", out, "--socket", _daemon.sock, *args)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r, (lines(out) if os.path.exists(out) else None)

    def test_malformed_and_missing(self):
        data = ('{"id": "a", "text": "fine"}\n'
                '{"id": "b", "text": \n'
                '\n'
                '{"id": "c"}\n'
                '{"id": "d", "text": 5}\n'
                '"just a string"\n'
                '{"id": "e", "text": ""}\n'
                '{"id": "f", "text": "also fine"}\n')
        r, rows = self.scan("bad.jsonl", data)
        self.assertEqual([x["id"] for x in rows], ["a", 2, "c", "d", 6, "e", "f"])
        self.assertIn("results", rows[0])
        self.assertTrue(rows[1]["error"].startswith("line 2: invalid JSON"))
        self.assertEqual(rows[2]["error"], 'line 4: missing field "text"')
        self.assertEqual(rows[3]["error"], 'line 5: field "text" is not a string')
        self.assertEqual(rows[4]["error"], "line 6: not a JSON object")
        self.assertTrue(rows[5]["error"].startswith("line 7: "), rows[5])  # the daemon's refusal
        self.assertIn("results", rows[6])
        self.assertIn("5 errors", r.stderr.decode())

    def test_csv_quoting_and_newlines(self):
        data = ('id,text,response\r\n'
                'q1,"hello, world",ok\r\n'
                'q2,"multi\nline ""quoted"" text","resp\nonse"\r\n'
                'q3,broken"quote,x\r\n'
                'q4,plain,fine\r\n')
        r, rows = self.scan("in.csv", data, "--response-field", "response")
        self.assertEqual([x["id"] for x in rows], ["q1", "q2", 6, "q4"])
        self.assertIn("results", rows[1])
        self.assertIn("line 6: CSV: a quote inside an unquoted field", rows[2]["error"])
        # The same texts as JSONL give the same scores: the CSV parse is the text.
        js = write("in2.jsonl", "".join(json.dumps(o) + "\n" for o in [
            {"id": "q1", "text": "hello, world", "response": "ok"},
            {"id": "q2", "text": 'multi\nline "quoted" text', "response": "resp\nonse"}]))
        out = path("in2.out")
        ctl("scan", "--in", js, "--out", out, "--model", _model, "--response-field", "response")
        self.assertEqual(lines(out), rows[:2])

    def test_csv_without_column(self):
        r, rows = self.scan("nocol.csv", "id,body\n1,x\n", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("has no column 'text'", r.stderr.decode())

    def test_empty_input(self):
        r, rows = self.scan("empty.jsonl", "")
        self.assertEqual(rows, [])
        self.assertIn("0 items", r.stderr.decode())
        r, rows = self.scan("empty.txt", "")
        self.assertEqual(rows, [])

    def test_text_and_stdin(self):
        out = path("stdin.out")
        r = ctl("scan", "--in", "-", "--format", "text", "--out", out, "--model", _model,
                input=b"alpha\nbeta\n\ngamma\n")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        rows = lines(out)
        self.assertEqual([x["id"] for x in rows], [1, 2, 3, 4])
        self.assertIn("error", rows[2])   # an empty line cannot be classified
        self.assertIn("results", rows[3])

    def test_bad_arguments(self):
        for args, msg in [(["--in", "x"], "--out FILE are required"),
                          (["--in", "/nonexistent.jsonl", "--out", path("n.out")],
                           "/nonexistent.jsonl"),
                          (["--in", "x", "--out", "y", "--shard", "3/3"], "--shard wants"),
                          (["--in", "x", "--out", "y", "--concurrency", "0"], "--concurrency"),
                          (["--in", "x", "--out", "y", "--format", "xml"], "--format"),
                          (["--in", "x", "--out", "y", "--model", "m", "--socket", "s"],
                           "does not go with")]:
            r = ctl("scan", *args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(msg, r.stderr.decode(), args)
        self.assertFalse(os.path.exists(path("n.out")))


class DaemonGone(unittest.TestCase):
    def test_unreachable_fails_and_keeps_output(self):
        inp = write("gone.txt", "a\nb\n")
        out = path("gone.out")
        r = ctl("scan", "--in", inp, "--out", out, "--socket", os.path.join(_tmp, "none.sock"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot connect", r.stderr.decode())
        self.assertEqual(slurp(out), b"")


if __name__ == "__main__":
    unittest.main()
