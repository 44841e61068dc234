"""shieldctl eval end to end, against the real shieldd and in-process: the figures against
scikit-learn on random labelled scores with ties (to 1e-9), all-positive / all-negative
policies, the per-item scores of a run through the daemon equal to scan's, the SVG parsed as
XML (one curve per policy), the PNG checked chunk by chunk, --write-thresholds changing exactly
the threshold line of each file and the daemon picking the new thresholds up on SIGHUP, resume,
and bad input (clear messages, no crash)."""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET
import zlib

import numpy as np
from sklearn.metrics import (average_precision_score, precision_recall_curve, roc_auc_score,
                             roc_curve)

from clients_common import POLICIES, SHIELDD, SLOW, ctl, rmtree, start, stop, wait_http_unix

_tmp = None
_model = None
_daemon = None

SCORED = ["dangerous", "harassment", "hate", "sexual"]   # the enabled policies, file order
TOPICS = ["cats", "weapons", "my neighbour", "cooking", "\u00e9t\u00e9 \u2603", "bombs"]


def setUpModule():
    global _tmp, _model, _daemon
    _tmp, _model, _daemon = start("eval-test-")


def tearDownModule():
    stop(_tmp, _daemon)


def path(name):
    return os.path.join(_tmp, name)


def write_jsonl(name, rows):
    p = path(name)
    with open(p, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return p


def slurp(p):
    with open(p, "rb") as f:
        return f.read()


def synthetic(name, n, seed, ties=True, policies=SCORED, label_rule=None):
    """An input with labels and a complete scores file (scan's format) for it: eval then
    scores nothing and measures the given scores. Returns (input, scores, {policy: (s, y)})."""
    rng = random.Random(seed)
    rows, lines, truth = [], [], {p: ([], []) for p in policies + ["overall"]}
    for i in range(n):
        labels, results, top = {}, [], 0.0
        for k, p in enumerate(policies):
            y = label_rule(p, i) if label_rule else int(rng.random() < 0.3 + 0.1 * k)
            s = rng.random() * 0.6 + 0.4 * y * rng.random()
            if ties:
                s = round(s, 2)   # many equal scores, across both classes
            labels[p] = y
            results.append({"policy": p, "probability": s, "violation": s >= 0.5})
            truth[p][0].append(s)
            truth[p][1].append(y)
            top = max(top, s)
        label = int(any(labels.values()))
        truth["overall"][0].append(top)
        truth["overall"][1].append(label)
        rows.append({"id": "s%d" % i, "text": "item %d" % i, "label": label, "labels": labels})
        lines.append(json.dumps({"id": "s%d" % i, "flagged": any(r["violation"] for r in results),
                                 "results": results}))
    inp = write_jsonl(name + ".jsonl", rows)
    sc = path(name + ".scores.jsonl")
    with open(sc, "w") as f:
        f.write("\n".join(lines) + "\n")
    return inp, sc, truth


def run_eval(*args, ok=True):
    r = ctl("eval", *args)
    if ok:
        assert r.returncode == 0, (r.returncode, r.stderr.decode()[-3000:])
    return r


def report(p):
    with open(p) as f:
        return json.load(f)


def by_name(rep):
    out = {p["policy"]: p for p in rep["policies"]}
    out["overall"] = rep["overall"]
    return out


class AgainstSklearn(unittest.TestCase):
    def check_series(self, s, y, got):
        s, y = np.array(s), np.array(y)
        self.assertEqual(got["items"], len(s))
        self.assertEqual(got["positives"], int(y.sum()))
        self.assertAlmostEqual(got["average_precision"], average_precision_score(y, s),
                               delta=1e-9)
        self.assertAlmostEqual(got["roc_auc"], roc_auc_score(y, s), delta=1e-9)
        prec, rec, thr = precision_recall_curve(y, s)
        ours = {p["threshold"]: p for p in got["curve"]}
        self.assertEqual(sorted(ours), sorted(set(s.tolist())))   # one point per distinct score
        for p, r, t in zip(prec[:-1], rec[:-1], thr):
            self.assertAlmostEqual(ours[t]["precision"], p, delta=1e-9)
            self.assertAlmostEqual(ours[t]["recall"], r, delta=1e-9)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0)[:-1]
        best = f1.max()
        opt = got["optimal_f1"]
        self.assertAlmostEqual(opt["f1"], best, delta=1e-9)
        # The threshold: its F1 is the optimum, and on ties it is the highest such threshold.
        at = {t: v for t, v in zip(thr, f1)}
        self.assertAlmostEqual(at[opt["threshold"]], best, delta=1e-9)
        self.assertEqual(opt["threshold"], max(t for t, v in at.items() if v >= best - 1e-12))
        # Its confusion matrix.
        pred = s >= opt["threshold"]
        self.assertEqual((opt["tp"], opt["fp"], opt["fn"], opt["tn"]),
                         (int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum()),
                          int((~pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())))
        fpr, tpr, rthr = roc_curve(y, s, drop_intermediate=False)
        for a, b, t in zip(fpr[1:], tpr[1:], rthr[1:]):
            self.assertAlmostEqual(ours[t]["fpr"], a, delta=1e-9)
            self.assertAlmostEqual(ours[t]["recall"], b, delta=1e-9)
        # The current thresholds (0.5 from the daemon's policies) and their confusion matrix.
        cur = got["current"]
        pred = s >= 0.5
        self.assertEqual((cur["tp"], cur["fp"], cur["fn"], cur["tn"]),
                         (int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum()),
                          int((~pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())))
        self.assertEqual(cur["threshold"], 0.5)

    def test_random_scores_with_and_without_ties(self):
        for seed, n, ties in [(1, 300, True), (2, 57, True), (3, 400, False), (4, 5, True)]:
            with self.subTest(seed=seed, n=n, ties=ties):
                inp, sc, truth = synthetic("sk%d" % seed, n, seed, ties=ties)
                before = slurp(sc)
                out = path("sk%d.json" % seed)
                r = run_eval("--in", inp, "--scores", sc, "--out", out, "--socket", _daemon.sock)
                self.assertEqual(slurp(sc), before)     # complete: nothing scored again
                got = by_name(report(out))
                for p in SCORED + ["overall"]:
                    if len(set(truth[p][1])) == 2:   # one class: test_all_positive_and_negative
                        self.check_series(*truth[p], got[p])
                table = r.stdout.decode()
                for p in SCORED + ["overall"]:
                    self.assertIn(p, table)
                self.assertIn("AU-PRC", table)

    def test_all_positive_and_all_negative(self):
        rule = {"hate": lambda i: 0, "sexual": lambda i: 1}
        inp, sc, truth = synthetic("allpn", 50, 9, policies=["hate", "sexual", "dangerous"],
                                   label_rule=lambda p, i: rule[p](i) if p in rule else i % 2)
        out = path("allpn.json")
        r = run_eval("--in", inp, "--scores", sc, "--out", out, "--socket", _daemon.sock)
        got = by_name(report(out))
        hate, sexual = got["hate"], got["sexual"]
        self.assertEqual((hate["positives"], hate["negatives"]), (0, 50))
        self.assertIsNone(hate["average_precision"])
        self.assertIsNone(hate["roc_auc"])
        self.assertIsNone(hate["optimal_f1"])
        self.assertIn("no positive items", hate["note"])
        self.assertEqual((sexual["positives"], sexual["negatives"]), (50, 0))
        self.assertAlmostEqual(sexual["average_precision"], 1.0, delta=1e-12)
        self.assertIsNone(sexual["roc_auc"])
        self.assertIn("no negative items", sexual["note"])
        self.assertEqual(sexual["optimal_f1"]["threshold"], min(truth["sexual"][0]))
        table = r.stdout.decode()
        self.assertIn("note: hate: no positive items", table)
        self.assertIn("note: sexual: no negative items", table)
        self.check_series(*truth["dangerous"], got["dangerous"])


class ThroughTheDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = random.Random(5)
        rows = []
        for i in range(40):
            labels = {p: int(rng.random() < 0.4) for p in SCORED}
            rows.append({"id": i, "text": "message %d about %s" % (i, TOPICS[i % 6]),
                         "labels": labels, "label": int(any(labels.values()))})
        cls.inp = write_jsonl("live.jsonl", rows)

    def test_item_scores_equal_scan(self):
        out = path("live.json")
        run_eval("--in", self.inp, "--out", out, "--socket", _daemon.sock, "--concurrency", "3")
        rep = report(out)
        scan_out = path("live-scan.jsonl")
        r = ctl("scan", "--in", self.inp, "--out", scan_out, "--socket", _daemon.sock)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        scan = [json.loads(l) for l in slurp(scan_out).decode().splitlines()]
        self.assertEqual(len(rep["item_scores"]), 40)
        self.assertEqual(rep["items"], 40)
        for got, want in zip(rep["item_scores"], scan):
            self.assertEqual(got["id"], want["id"])
            self.assertEqual(got["flagged"], want["flagged"])
            self.assertEqual(got["scores"], {x["policy"]: x["probability"]
                                             for x in want["results"]})
        # The scores file is scan's output, byte for byte.
        self.assertEqual(slurp(out + ".scores.jsonl"), slurp(scan_out))
        # In-process gives the same report.
        out2 = path("live-m.json")
        run_eval("--in", self.inp, "--out", out2, "--model", _model, "--policies", POLICIES)
        rep2 = report(out2)
        for k in ("policies", "overall", "item_scores"):
            self.assertEqual(rep2[k], rep[k])

    def test_resume(self):
        full = path("resume-full.json")
        run_eval("--in", self.inp, "--out", full, "--socket", _daemon.sock)
        lines = slurp(full + ".scores.jsonl").split(b"\n")
        part = path("resume.json")
        with open(part + ".scores.jsonl", "wb") as f:   # 17 done, the 18th torn by a kill
            f.write(b"\n".join(lines[:17]) + b"\n" + lines[17][:20])
        r = run_eval("--in", self.inp, "--out", part, "--socket", _daemon.sock)
        self.assertIn("17 resumed", r.stderr.decode())
        self.assertEqual(slurp(part + ".scores.jsonl"), slurp(full + ".scores.jsonl"))
        a, b = report(full), report(part)
        self.assertEqual(a["policies"], b["policies"])
        self.assertEqual(a["item_scores"], b["item_scores"])

    def test_csv_labels(self):
        p = path("live.csv")
        with open(p, "w") as f:
            f.write("id,text,labels.hate,label\n")
            for i in range(12):
                f.write('c%d,"text, number %d",%s,%d\n' % (i, i, "true" if i % 3 == 0 else "0",
                                                           i % 2))
        out = path("csv.json")
        run_eval("--in", p, "--out", out, "--socket", _daemon.sock)
        got = by_name(report(out))
        self.assertEqual(got["hate"]["items"], 12)
        self.assertEqual(got["hate"]["positives"], 4)
        self.assertEqual(got["overall"]["positives"], 6)
        self.assertEqual(got["sexual"]["items"], 0)   # scored, no labels of its own


def png_check(testcase, p):
    """A PNG, chunk by chunk: signature, CRCs, IHDR, IDAT inflating to the image's size."""
    data = slurp(p)
    testcase.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
    pos, idat, ihdr, end = 8, b"", None, False
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        testcase.assertEqual(zlib.crc32(typ + body) & 0xffffffff, crc, typ)
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        elif typ == b"IEND":
            end = True
        pos += 12 + n
    testcase.assertTrue(end)
    w, h, depth, ctype = ihdr[:4]
    testcase.assertEqual(depth, 8)
    bpp = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    testcase.assertEqual(len(zlib.decompress(idat)), h * (1 + w * bpp))
    return w, h


class Plots(unittest.TestCase):
    def test_svg_one_curve_per_policy(self):
        inp, sc, _ = synthetic("plot", 120, 11)
        svg = path("plot.svg")
        run_eval("--in", inp, "--scores", sc, "--plot", svg, "--socket", _daemon.sock)
        root = ET.parse(svg).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        self.assertEqual(root.tag, ns + "svg")
        series = SCORED + ["overall"]
        for cls in ("pr-curve", "roc-curve"):
            curves = [e for e in root.iter(ns + "polyline") if e.get("class") == cls]
            self.assertEqual(sorted(e.get("data-policy") for e in curves), sorted(series), cls)
            for e in curves:
                pts = [tuple(map(float, q.split(","))) for q in e.get("points").split()]
                self.assertGreater(len(pts), 5)
        opt = [e.get("data-policy") for e in root.iter(ns + "circle")
               if e.get("class") == "optimal"]
        self.assertEqual(sorted(opt), sorted(series * 2))         # PR and ROC
        cur = [e.get("data-policy") for e in root.iter(ns + "rect") if e.get("class") == "current"]
        self.assertEqual(sorted(cur), sorted(series * 2))
        hists = [e.get("data-policy") for e in root.iter(ns + "g")
                 if e.get("class") == "histogram"]
        self.assertEqual(hists, series)

    def test_png(self):
        inp, sc, _ = synthetic("plotpng", 80, 12)
        png = path("plot.png")
        run_eval("--in", inp, "--scores", sc, "--plot", png, "--socket", _daemon.sock)
        w, h = png_check(self, png)
        self.assertEqual(w, 960)
        self.assertGreater(h, 600)
        ET.parse(path("plot.svg"))      # the SVG stays next to it

    def test_png_without_converter(self):
        inp, sc, _ = synthetic("noconv", 20, 13)
        png = path("noconv.png")
        env = {"PATH": "/nonexistent"}
        r = ctl("eval", "--in", inp, "--scores", sc, "--plot", png, "--socket", _daemon.sock,
                env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no SVG-to-PNG converter", r.stderr.decode())
        self.assertFalse(os.path.exists(png))
        ET.parse(path("noconv.svg"))


class LiveDaemon:
    """shieldd on its own copy of the policies, for --write-thresholds and SIGHUP."""

    def __init__(self, policies):
        self.dir = path("hupd-%d" % time.monotonic_ns())
        os.mkdir(self.dir)
        self.sock = os.path.join(self.dir, "s.sock")
        self.log = open(os.path.join(self.dir, "log"), "w+b")
        self.proc = subprocess.Popen([SHIELDD, "-d", "-m", _model, "-p", policies, "--listen",
                                      "unix:" + self.sock], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        assert wait_http_unix(self.sock, time.time() + 120 * SLOW), "shieldd did not start"

    def thresholds(self):
        r = ctl("policies", "--socket", self.sock, "--json")
        assert r.returncode == 0, r.stderr.decode()
        return {p["name"]: p["threshold"] for p in json.loads(r.stdout)["policies"]}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30 * SLOW)
        self.log.close()


def read_lines(p):
    with open(p, "rb") as f:
        return f.read().split(b"\n")


class WriteThresholds(unittest.TestCase):
    def setUp(self):
        self.pol = path("pol-%d" % time.monotonic_ns())
        shutil.copytree(POLICIES, self.pol, ignore=shutil.ignore_patterns("*.c", "*.h"))
        rng = random.Random(21)
        rows = []
        for i in range(36):
            labels = {p: int(rng.random() < 0.5) for p in SCORED}
            rows.append({"id": i, "text": "write %d on %s" % (i, TOPICS[i % 6]), "labels": labels})
        self.inp = write_jsonl("wt.jsonl", rows)

    def tearDown(self):
        rmtree(self.pol)

    def changed(self, name):
        """The lines of policies/NAME that differ in the copy (same line count)."""
        a, b = read_lines(os.path.join(POLICIES, name)), read_lines(os.path.join(self.pol, name))
        self.assertEqual(len(a), len(b), name)
        return [(x, y) for x, y in zip(a, b) if x != y]

    def test_optimal_f1_then_sighup(self):
        d = LiveDaemon(self.pol)
        try:
            out = path("wt.json")
            r = run_eval("--in", self.inp, "--out", out, "--socket", d.sock,
                         "--write-thresholds", self.pol)
            got = by_name(report(out))
            for p in SCORED:
                diff = self.changed(p + ".yaml")
                self.assertEqual(len(diff), 1, (p, diff))
                old, new = diff[0]
                self.assertEqual(old, b"threshold: 0.5")
                self.assertTrue(new.startswith(b"threshold: "), new)
                value = float(new.split(b": ")[1])
                self.assertEqual(value, got[p]["optimal_f1"]["threshold"])
                self.assertEqual(value, got[p]["chosen_threshold"])
                self.assertIn("%s.yaml: threshold 0.5 -> %s" % (p, new.split(b": ")[1].decode()),
                              r.stdout.decode())
            for name in ("obscenity.yaml", "violence.yaml", "template.yaml"):
                self.assertEqual(self.changed(name), [])
            # No temporary file left behind.
            self.assertEqual(sorted(os.listdir(self.pol)),
                             sorted(f for f in os.listdir(POLICIES) if f.endswith(".yaml")))
            # The result loads: shieldd -n, and the running daemon after SIGHUP.
            chk = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", self.pol],
                                 capture_output=True, timeout=120 * SLOW)
            self.assertEqual(chk.returncode, 0, chk.stderr.decode())
            want = {p: got[p]["optimal_f1"]["threshold"] for p in SCORED}
            self.assertEqual({p: d.thresholds()[p] for p in SCORED}, {p: 0.5 for p in SCORED})
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 30 * SLOW
            while time.time() < deadline and {p: d.thresholds()[p] for p in SCORED} != want:
                time.sleep(0.1)
            self.assertEqual({p: d.thresholds()[p] for p in SCORED}, want)
            # Scored again, the verdicts follow the new thresholds; the report's optimum holds.
            out2 = path("wt2.json")
            run_eval("--in", self.inp, "--out", out2, "--socket", d.sock)
            again = by_name(report(out2))
            for p in SCORED:
                self.assertEqual(again[p]["current"]["threshold"], want[p])
                self.assertEqual({k: again[p]["current"][k] for k in ("tp", "fp", "fn", "tn")},
                                 {k: got[p]["optimal_f1"][k] for k in ("tp", "fp", "fn", "tn")})
        finally:
            d.stop()

    def test_target_recall_and_precision(self):
        out = path("wtr.json")
        r = run_eval("--in", self.inp, "--out", out, "--model", _model, "--policies", POLICIES, "--target-recall", "0.8",
                 "--write-thresholds", self.pol)
        self.assertIn("at the target recall >= 0.8:", r.stdout.decode())
        got = by_name(report(out))
        for p in SCORED:
            curve = got[p]["curve"]                 # highest threshold first
            want = next(c["threshold"] for c in curve if c["recall"] >= 0.8)
            self.assertEqual(got[p]["chosen_threshold"], want)
            (old, new), = self.changed(p + ".yaml")
            self.assertEqual(float(new.split(b": ")[1]), want)
        out = path("wtp.json")
        r = run_eval("--in", self.inp, "--out", out, "--scores", path("wtr.json.scores.jsonl"),
                     "--model", _model, "--policies", POLICIES, "--target-precision", "0.55",
                     "--write-thresholds", self.pol)
        got = by_name(report(out))
        for p in SCORED:
            ok = [c["threshold"] for c in got[p]["curve"] if c["precision"] >= 0.55]
            if ok:
                self.assertEqual(got[p]["chosen_threshold"], min(ok))
                (old, new), = self.changed(p + ".yaml")
                self.assertEqual(float(new.split(b": ")[1]), min(ok))
            else:
                self.assertIsNone(got[p]["chosen_threshold"])
                self.assertIn("%s: no threshold reaches the target precision" % p,
                              r.stderr.decode())

    def test_single_label_sets_every_policy(self):
        rng = random.Random(3)
        inp = write_jsonl("single.jsonl", [{"id": i, "text": "single %d" % i,
                                            "label": rng.random() < 0.5} for i in range(30)])
        out = path("single.json")
        run_eval("--in", inp, "--out", out, "--model", _model, "--policies", POLICIES, "--write-thresholds", self.pol)
        rep = report(out)
        t = rep["overall"]["optimal_f1"]["threshold"]
        self.assertEqual(rep["overall"]["items"], 30)
        for p in SCORED:
            (old, new), = self.changed(p + ".yaml")
            self.assertEqual(float(new.split(b": ")[1]), t)

    def test_bad_dir(self):
        inp, sc, _ = synthetic("baddir", 20, 14)
        r = run_eval("--in", inp, "--scores", sc, "--socket", _daemon.sock,
                     "--write-thresholds", path("no-such-dir"), ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--write-thresholds", r.stderr.decode())
        self.assertIn("no-such-dir", r.stderr.decode())


class BadInput(unittest.TestCase):
    def test_arguments(self):
        txt = path("x.txt")
        with open(txt, "w") as f:
            f.write("a\n")
        for args, msg in [(["--in", txt], "plain text has no labels"),
                          (["--in", "-"], "--in must be a file"),
                          ([], "--in FILE is required"),
                          (["--in", txt, "--target-precision", "0.5", "--target-recall", "0.5"],
                           "not both"),
                          (["--in", txt, "--target-precision", "1.5"], "in [0, 1]"),
                          (["--in", txt, "--target-recall", "x"], "wants a number")]:
            with self.subTest(args=args):
                r = ctl("eval", *args, "--socket", _daemon.sock)
                self.assertEqual(r.returncode, 2)
                self.assertIn(msg, r.stderr.decode())

    def test_no_labels(self):
        inp = write_jsonl("nolab.jsonl", [{"id": i, "text": "x %d" % i} for i in range(3)])
        r = run_eval("--in", inp, "--socket", _daemon.sock, ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no item has a label", r.stderr.decode())

    def test_bad_labels_skipped(self):
        inp, sc, _ = synthetic("badlab", 30, 15)
        rows = [json.loads(l) for l in slurp(inp).decode().splitlines()]
        rows[3]["labels"]["hate"] = "maybe"
        rows[7]["label"] = 2
        rows[9]["labels"] = [1]
        write_jsonl("badlab.jsonl", rows)
        out = path("badlab.json")
        r = run_eval("--in", inp, "--scores", sc, "--out", out, "--socket", _daemon.sock)
        err = r.stderr.decode()
        self.assertIn('line 4: label "labels.hate" must be true/false or 0/1; item skipped', err)
        self.assertIn('line 8: "label" must be true/false or 0/1; item skipped', err)
        self.assertIn('line 10: "labels" must be an object', err)
        rep = report(out)
        self.assertEqual(rep["bad_labels"], 3)
        self.assertEqual(rep["overall"]["items"], 27)

    def test_labels_of_unscored_policies(self):
        inp, sc, _ = synthetic("unsc", 12, 18)
        rows = [json.loads(l) for l in slurp(inp).decode().splitlines()]
        for r in rows[:5]:
            r["labels"]["violence"] = 1
        write_jsonl("unsc.jsonl", rows)
        r = run_eval("--in", inp, "--scores", sc, "--socket", _daemon.sock)
        self.assertIn("labels of policies that were not scored, ignored: violence (5 items)",
                      r.stderr.decode())

    def test_scores_from_another_input(self):
        inp, sc, _ = synthetic("other-a", 10, 16)
        inp2 = write_jsonl("other-b.jsonl", [{"id": "z%d" % i, "text": "t", "label": 1}
                                             for i in range(10)])
        r = run_eval("--in", inp2, "--scores", sc, "--socket", _daemon.sock, ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is from another input", r.stderr.decode())
        with open(sc, "ab") as f:   # more lines than the input has items
            f.write(slurp(sc))
        r = run_eval("--in", inp, "--scores", sc, "--socket", _daemon.sock, ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("more lines than", r.stderr.decode())

    def test_unwritable_outputs(self):
        inp, sc, _ = synthetic("unw", 10, 17)
        for flag in ("--plot", "--out"):
            with self.subTest(flag=flag):
                r = run_eval("--in", inp, "--scores", sc, "--socket", _daemon.sock, flag,
                             path("no-dir/x.svg"), ok=False)
                self.assertEqual(r.returncode, 1)
                self.assertIn("no-dir/x.svg", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
