"""Resident memory after loading: a GGUF file's pages are released once its weights are repacked
(as a safetensors folder's are), so a GGUF model costs what the same model from a folder costs,
for every file type and precision (`shieldctl bench --json`: rss_after_load_mb, rss_mb)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from clients_common import MKMODEL, SHIELDCTL, TOP

PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
# 4 layers of d_model 512, ffn 2048: 31 MB of BF16 matrices, 2 MB per gate/up/down.
SHAPE = ["--preset", "tiny", "--hidden", "512", "--ffn", "2048", "--layers", "4", "--heads", "8",
         "--kv-heads", "4", "--head-dim", "64", "--no-tokenizer", "--vocab", "512", "--quiet"]
SLACK_MB = 3.0  # allocator and page-table noise; a GGUF whose pages stayed would be +16..31 MB


class MemoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sg-mem-")
        cls.folder = os.path.join(cls.tmp, "m")
        cls.gguf = {"bf16": os.path.join(cls.tmp, "m.gguf")}
        subprocess.run([MKMODEL] + SHAPE + ["--out", cls.folder, "--gguf", cls.gguf["bf16"]],
                       check=True, timeout=120)
        for t in ("q8_0", "q4_0"):
            cls.gguf[t] = os.path.join(cls.tmp, "m-%s.gguf" % t)
            subprocess.run([PYTHON, os.path.join(TOP, "tools", "gguf_quantize.py"), "quantize",
                            cls.gguf["bf16"], cls.gguf[t], "--type", t], check=True,
                           timeout=300, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def bench(self, model, prec):
        p = subprocess.run([SHIELDCTL, "bench", "--model", model, "--precision", prec,
                            "--threads", "1", "--tokens", "4", "--reps", "1", "--no-classify",
                            "--json"], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_gguf_costs_what_the_folder_costs(self):
        for prec in ("f32", "bf16", "int8"):
            ref = self.bench(self.folder, prec)
            files = ["bf16"] + (["q8_0", "q4_0"] if prec == "int8" else [])
            for t in files:
                j = self.bench(self.gguf[t], prec)
                what = "%s GGUF at %s (kernel %s; folder %s)" % (t, prec, j["kernel"],
                                                                 ref["kernel"])
                self.assertEqual(j["kernel"], ref["kernel"], what)
                self.assertLess(j["rss_after_load_mb"], ref["rss_after_load_mb"] + SLACK_MB,
                                what)
                # The peak holds one matrix's source pages beyond the packed weights at most.
                self.assertLess(j["rss_mb"], ref["rss_mb"] + SLACK_MB, what)


if __name__ == "__main__":
    unittest.main()
