"""shieldctl logits: the engine's logits for the tiny-a fixture in every format, against the
float64 goldens, and its errors."""
import os
import subprocess
import tempfile
import unittest

from clients_common import SHIELDCTL as CTL, TOP

FIX = os.path.join(TOP, "tests", "fixtures", "tiny-a")
TOL = 1e-4


def read_golden(name):
    """{position: [logits]} from a ref_f64_*.txt file."""
    rows, cur = {}, None
    with open(os.path.join(FIX, name)) as f:
        for line in f:
            if line.startswith("logits "):
                cur = rows.setdefault(int(line.split()[1]), [])
            elif cur is not None and line.strip():
                cur.append(float(line))
    return rows


def parse_output(text):
    """{position: [logits]} from shieldctl logits output (position -1 without the headers)."""
    rows, cur, pos = {}, None, -1
    for line in text.splitlines():
        if line.startswith("position "):
            pos = int(line.split()[1])
            cur = rows.setdefault(pos, [])
            continue
        if cur is None:
            cur = rows.setdefault(pos, [])
        i, v = line.split()
        assert int(i) == len(cur), "ids must be in order"
        cur.append(float(v))
    return rows


class LogitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIX, "prompt.ids")) as f:
            cls.ids = f.read().strip()
        cls.last = read_golden("ref_f64_last.txt")
        cls.all = read_golden("ref_f64_all.txt")

    def run_ctl(self, *args):
        return subprocess.run([CTL, "logits"] + list(args), capture_output=True, text=True,
                              timeout=120)

    def check_last(self, model):
        p = self.run_ctl("--model", os.path.join(FIX, model), "--ids", self.ids, "--threads", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = parse_output(p.stdout)[-1]
        ref = self.last[47]
        self.assertEqual(len(got), 4096)
        err = max(abs(a - b) for a, b in zip(got, ref))
        self.assertLess(err, TOL, "%s: max error %g" % (model, err))

    def test_formats(self):
        for model in ("hf_f32", "hf_bf16", "hf_f32/model.safetensors", "model-f32.gguf",
                      "model-bf16.gguf"):
            with self.subTest(model=model):
                self.check_last(model)

    def test_all_positions_and_ids_file(self):
        p = self.run_ctl("--model", os.path.join(FIX, "hf_bf16"), "--ids-file",
                         os.path.join(FIX, "prompt.ids"), "--all-positions")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = parse_output(p.stdout)
        self.assertEqual(sorted(got), list(range(48)))
        err = max(abs(a - b) for pos in range(48) for a, b in zip(got[pos], self.all[pos]))
        self.assertLess(err, TOL)

    def test_errors(self):
        p = self.run_ctl("--ids", "2,3")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--model", p.stderr)
        p = self.run_ctl("--model", os.path.join(FIX, "hf_f32"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("no token ids", p.stderr)
        p = self.run_ctl("--model", os.path.join(FIX, "hf_f32"), "--ids", "2,x,3")
        self.assertEqual(p.returncode, 1)
        self.assertIn("'x", p.stderr)
        p = self.run_ctl("--model", os.path.join(FIX, "hf_f32"), "--ids", "2,4096")
        self.assertEqual(p.returncode, 1)
        self.assertIn("4096", p.stderr)
        p = self.run_ctl("--model", "/nonexistent/model", "--ids", "2")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/model", p.stderr)
        p = self.run_ctl("--model", os.path.join(FIX, "hf_f32"), "--ids-file", "/nonexistent.ids")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent.ids", p.stderr)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write('{"model_type": "gemma2", "hidden_size": "big"}')
            p = self.run_ctl("--model", d, "--ids", "2")
            self.assertEqual(p.returncode, 1)
            self.assertIn("config.json", p.stderr)
        p = self.run_ctl("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--all-positions", p.stdout)


if __name__ == "__main__":
    unittest.main()
