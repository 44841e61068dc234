"""Runs every tests/integration/test_*.py with unittest and prints 'N passed, N failed'.

A skipped test fails the run unless its reason matches ACCEPTED_SKIPS: facts of the machine
that no package can change (the CPU, the kernel, a daemon the user runs). A missing program or
library is not such a reason: tools/setup.sh installs it, so a test that skips for it would
hide a broken setup.
"""
import os
import re
import sys
import unittest

ACCEPTED_SKIPS = [
    r"^no int8 kernel on this CPU",                 # test_kernels: needs AVX-512 VNNI
    r"^this kernel has no prctl\(PR_SET_MDWE\)",    # test_kernels: Linux 6.3+
    r"^a shieldd is running on the standard socket",  # test_clients: the user's own daemon
]

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "clients", "python"))
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py", top_level_dir=here)
result = unittest.TextTestRunner(verbosity=1, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
passed = result.testsRun - failed - len(result.skipped)
bad_skips = [(t, why) for t, why in result.skipped
             if not any(re.search(p, why) for p in ACCEPTED_SKIPS)]
for t, why in bad_skips:
    print("integration: unexpected skip of %s: %s (not an accepted reason: install what it needs "
          "in tools/setup.sh)" % (t.id(), why))
print("integration: %d passed, %d failed, %d skipped (%d unexpectedly)" % (
    passed, failed, len(result.skipped), len(bad_skips)))
sys.exit(0 if failed == 0 and not bad_skips else 1)
