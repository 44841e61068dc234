"""GGUF end to end: tools/gguf_quantize.py (reader/writer, quantizers, float64 reference) and
`shieldctl logits` on GGUF files, good and broken."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from clients_common import SHIELDCTL, TOP

PY = "/usr/bin/python3"
TOOL = os.path.join(TOP, "tools", "gguf_quantize.py")
FX = os.path.join(TOP, "tests", "fixtures")


def read_ref(path):
    """(ids, rows of logits) from a ref_f64 / *.ref.txt file."""
    with open(path) as f:
        lines = f.read().split("\n")
    ids = [int(x) for x in lines[1].split()[1:]]
    rows = []
    for ln in lines[3:]:
        if ln.startswith("logits"):
            rows.append([])
        elif ln:
            rows[-1].append(float(ln))
    return ids, rows


def have_numpy():
    return subprocess.run([PY, "-c", "import numpy"], capture_output=True).returncode == 0


@unittest.skipUnless(have_numpy(), "numpy for /usr/bin/python3 is missing")
class ToolTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sg-gguf-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def tool(self, *args):
        p = subprocess.run([PY, TOOL] + list(args), capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def same_bytes(self, a, b):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertTrue(fa.read() == fb.read(), "%s differs from %s" % (a, b))

    def test_roundtrip_is_byte_identical(self):
        # the reader and writer reproduce llama.cpp's converter output exactly
        sys.path.insert(0, os.path.join(TOP, "tools"))
        import gguf_quantize as g
        for name in ("model-f32.gguf", "model-bf16.gguf"):
            src = os.path.join(FX, "tiny-a", name)
            kvs, tensors, align = g.read_gguf(src)
            out = os.path.join(self.tmp, name)
            g.write_gguf(out, kvs, tensors, align)
            self.same_bytes(src, out)

    def test_fixtures_are_reproducible(self):
        f32 = os.path.join(FX, "tiny-a", "model-f32.gguf")
        for t in ("q8_0", "q4_0"):
            out = os.path.join(self.tmp, "a-%s.gguf" % t)
            self.tool("quantize", f32, out, "--type", t)
            self.same_bytes(out, os.path.join(FX, "quant", "tiny-a-%s.gguf" % t))
        k = os.path.join(self.tmp, "k.gguf")
        self.tool("synth", k, "--seed", "1")
        out = os.path.join(self.tmp, "k-q4_k.gguf")
        self.tool("quantize", k, out, "--type", "q4_k")
        self.same_bytes(out, os.path.join(FX, "quant", "tiny-k-q4_k.gguf"))

    def test_reference_matches_goldens(self):
        ids, want = read_ref(os.path.join(FX, "tiny-a", "ref_f64_last.txt"))
        out = self.tool("ref", os.path.join(FX, "tiny-a", "model-bf16.gguf"),
                        "--tokens", ",".join(map(str, ids)))
        path = os.path.join(self.tmp, "ref.txt")
        with open(path, "w") as f:
            f.write(out)
        ids2, got = read_ref(path)
        self.assertEqual(ids, ids2)
        err = max(abs(a - b) for a, b in zip(got[0], want[0]))
        self.assertLess(err, 1e-6)


@unittest.skipUnless(os.path.exists(SHIELDCTL), "shieldctl not built")
class ShieldctlGgufTest(unittest.TestCase):
    def logits(self, model, ids, all_positions=False):
        args = [SHIELDCTL, "logits", "--model", model, "--ids", ",".join(map(str, ids)),
                "--threads", "2"]
        if all_positions:
            args.append("--all-positions")
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    def test_quantized_models(self):
        for name in ("tiny-k-q4_k", "tiny-k-q6_k", "tiny-k-mix", "tiny-a-q4_0"):
            ids, want = read_ref(os.path.join(FX, "quant", name + ".ref.txt"))
            p = self.logits(os.path.join(FX, "quant", name + ".gguf"), ids, len(want) > 1)
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = []
            for ln in p.stdout.split("\n"):
                if ln.startswith("position") or (not rows and ln):
                    rows.append([])
                if ln and not ln.startswith("position"):
                    rows[-1].append(float(ln.split()[1]))
            self.assertEqual(len(rows), len(want))
            err = max(abs(a - b) for r, w in zip(rows, want) for a, b in zip(r, w))
            self.assertLess(err, 1e-4, name)

    def test_broken_gguf(self):
        tmp = tempfile.mkdtemp(prefix="sg-gguf-")
        try:
            bad = os.path.join(tmp, "cut.gguf")
            with open(os.path.join(FX, "tiny-a", "model-f32.gguf"), "rb") as f:
                blob = f.read()
            with open(bad, "wb") as f:
                f.write(blob[:len(blob) // 2])
            p = self.logits(bad, [2, 3])
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("cut.gguf", p.stderr)
            self.assertIn("outside the data section", p.stderr)
            with open(bad, "wb") as f:
                f.write(b"GGUF\x07\x00\x00\x00" + blob[8:200])
            p = self.logits(bad, [2, 3])
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("GGUF version 7 is not supported", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
