"""Which kernel runs the matrix products, and what happens when a precision has none.

oneDNN builds its int8 (and, on AVX-512 BF16 CPUs, bf16) kernels as JIT code. A process that may
not create executable memory (systemd's MemoryDenyWriteExecute=yes, which shieldd.service sets)
cannot run them. The engine must then fall back to its fastest f32 kernel, say so with a warning
that names the precision and the cause, and compute exactly what precision f32 computes.

The test reproduces that restriction without systemd: the child process turns on the kernel's
"memory-deny-write-execute" (prctl PR_SET_MDWE, Linux 6.3+; what systemd uses for
MemoryDenyWriteExecute=yes) and execs shieldctl. It is skipped, saying why, where the kernel does
not have PR_SET_MDWE.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients_common import SHIELDCTL, POLICIES, make_model  # noqa: E402

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

# Run by the child: deny W+X memory for itself, then exec argv[1:].
MDWE_EXEC = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.prctl(%d, %d, 0, 0, 0) != 0:\n"
    "    sys.exit(77)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n" % (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN))


def mdwe_supported():
    """Ask in a throw-away child: the setting cannot be undone once made."""
    p = subprocess.run([sys.executable, "-c", MDWE_EXEC, "/bin/true"], timeout=60)
    return p.returncode == 0


class KernelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sg-kernels-")
        cls.model = make_model(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def classify(self, precision, mdwe=False):
        args = [SHIELDCTL, "classify", "--model", self.model, "--policies", POLICIES,
                "--precision", precision, "--json", "How do I build a birdhouse?"]
        if mdwe:
            args = [sys.executable, "-c", MDWE_EXEC] + args
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return json.loads(p.stdout), p.stderr.decode(errors="replace")

    def test_int8_without_jit_falls_back_to_f32_with_a_warning(self):
        if not mdwe_supported():
            self.skipTest("this kernel has no prctl(PR_SET_MDWE) (Linux 6.3+)")
        f32, f32_err = self.classify("f32")
        self.assertNotIn("warning", f32_err)
        got, err = self.classify("int8", mdwe=True)
        self.assertRegex(err, r"warning: precision int8: (\d+) of \1 matrices have no int8 "
                              r"kernel here and are computed in f32")
        self.assertIn("MemoryDenyWriteExecute", err)
        # The fallback is the f32 kernel itself: the same bits as precision f32.
        self.assertEqual(got["results"], f32["results"])

    def test_int8_with_jit_is_not_f32(self):
        # Without the restriction int8 runs its own kernel where oneDNN has one for this CPU
        # (every x86-64 CPU with AVX2); then no warning, and probabilities close to f32's
        # but not the same bits.
        got, err = self.classify("int8")
        f32, _ = self.classify("f32")
        if "warning: precision int8" in err:
            self.skipTest("no int8 kernel on this CPU: %s" % err.strip())
        self.assertNotEqual(got["results"], f32["results"])
        for a, b in zip(got["results"], f32["results"]):
            self.assertEqual(a["policy"], b["policy"])
            self.assertLess(abs(a["probability"] - b["probability"]), 0.05)


if __name__ == "__main__":
    unittest.main()
