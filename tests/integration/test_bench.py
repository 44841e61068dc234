"""`shieldctl bench --json` on the tiny model: its keys cannot drift (tools/bench.sh and
tools/bench_compare.py read them), the FLOPs it states are the FLOPs the engine computes, and
the classification is reported cold and warm."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from clients_common import POLICIES, SHIELDCTL, make_model

KEYS = {
    "model", "d_model", "n_layer", "precision", "kernel", "threads", "load_s",
    "prefill_tokens_per_s", "prefill_tokens_per_s_median", "prefill_gflop",
    "prefill_gflop_per_s", "prefill_gflop_per_cpu_s", "classify_4_policies_ms", "classify_4_policies_ms_median",
    "classify_cold_ms", "classify_message_tokens", "classify_prompt_tokens",
    "classify_computed_tokens", "classify_probabilities", "tokenizer_mb_per_s",
    "rss_after_load_mb", "rss_mb",
}

# The tiny preset of tools/mkmodel.c.
TINY = {"d": 64, "ffn": 128, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16,
        "window": 8}


def flops(n, n_ids=2, s=TINY):
    """Counted independently of the C code: what the forward pass multiplies for a prefill of
    n tokens whose last row's logits (n_ids of them) are read."""
    d, q, kv = s["d"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    total = 0
    for layer in range(s["layers"]):
        last = layer == s["layers"] - 1
        rows = [n - 1] if last else range(n)
        total += n * 2 * d * 2 * kv  # k and v of every row
        for p in rows:
            total += 2 * (d * q + q * d + 3 * d * s["ffn"])  # q, o, gate, up, down
            keys = p + 1
            if layer % 2 == 0:
                keys = min(keys, s["window"])
            total += 2 * 2 * q * keys  # scores and weighted values
    return (total + 2 * d * n_ids) / 1e9


class BenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sg-bench-")
        cls.model = make_model(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def bench(self, *args):
        p = subprocess.run([SHIELDCTL, "bench", "--model", self.model, "--policies", POLICIES,
                            "--threads", "1", "--reps", "2", "--json"] + list(args),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_keys_flops_cold_and_warm(self):
        j = self.bench("--tokens", "5,16")
        self.assertEqual(set(j), KEYS)
        self.assertEqual(set(j["prefill_tokens_per_s"]), {"5", "16"})
        self.assertEqual(set(j["prefill_gflop"]), {"5", "16"})
        self.assertEqual((j["d_model"], j["n_layer"], j["precision"], j["threads"]),
                         (64, 2, "bf16", 1))
        self.assertTrue(j["kernel"])
        for n in (5, 16):  # 16 > the window of 8: the sliding layer sees 8 keys
            # (JSON reals carry 6 significant digits)
            self.assertAlmostEqual(j["prefill_gflop"][str(n)], flops(n), delta=1e-5 * flops(n))
            self.assertAlmostEqual(j["prefill_gflop_per_s"][str(n)],
                                   flops(n) * j["prefill_tokens_per_s"][str(n)] / n,
                                   delta=1e-5 * j["prefill_gflop_per_s"][str(n)])
            # CPU-seconds of 1 thread: at most the wall time (the rate is at least the wall one)
            self.assertGreaterEqual(j["prefill_gflop_per_cpu_s"][str(n)],
                                    0.9 * j["prefill_gflop_per_s"][str(n)])
        # A cold classification computes the template preamble too; warm ones reuse it.
        self.assertGreater(j["classify_cold_ms"], 0)
        self.assertGreater(j["classify_4_policies_ms"], 0)
        self.assertLessEqual(j["classify_4_policies_ms"], j["classify_4_policies_ms_median"])
        self.assertLess(j["classify_computed_tokens"], j["classify_prompt_tokens"])
        self.assertEqual(len(j["classify_probabilities"]), 4)
        for p in j["classify_probabilities"]:
            self.assertTrue(0.0 < p < 1.0)

    def test_no_classify_leaves_the_classification_out(self):
        j = self.bench("--tokens", "4", "--no-classify", "--precision", "f32")
        self.assertEqual(set(j), KEYS - {k for k in KEYS if k.startswith("classify_")})
        self.assertEqual(j["precision"], "f32")


if __name__ == "__main__":
    unittest.main()
