"""The integration runner itself: a skip whose reason is not an accepted one fails the run (a
test must not pass silently because something it needs is missing); an accepted one does not."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class RunnerTest(unittest.TestCase):
    def run_with(self, reason):
        d = tempfile.mkdtemp(prefix="runner-")
        try:
            shutil.copy(os.path.join(HERE, "runner.py"), d)
            with open(os.path.join(d, "test_x.py"), "w") as f:
                f.write("import unittest\n\nclass T(unittest.TestCase):\n"
                        "    def test_ok(self):\n        pass\n\n"
                        "    def test_skip(self):\n        self.skipTest(%r)\n" % reason)
            return subprocess.run([sys.executable, os.path.join(d, "runner.py")],
                                  capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_unexpected_skip_fails(self):
        p = self.run_with("nginx is not installed")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("unexpected skip of test_x.T.test_skip: nginx is not installed", p.stdout)
        self.assertIn("1 passed, 0 failed, 1 skipped (1 unexpectedly)", p.stdout)

    def test_accepted_skip_passes(self):
        p = self.run_with("no int8 kernel on this CPU: avx512_vnni missing")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("1 passed, 0 failed, 1 skipped (0 unexpectedly)", p.stdout)


if __name__ == "__main__":
    unittest.main()
