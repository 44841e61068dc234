"""systemd/shieldd.service's hardening, as `systemd-analyze security` rates it (offline: no
running systemd needed). The unit scores 1.4 (docs/RELIABILITY.md); this fails if a change
pushes its exposure over 1.5."""
import os
import shutil
import subprocess
import unittest

from clients_common import TOP


class UnitSecurityTest(unittest.TestCase):
    def test_exposure(self):
        tool = shutil.which("systemd-analyze")
        self.assertIsNotNone(tool, "systemd-analyze missing: tools/setup.sh installs systemd")
        unit = os.path.join(TOP, "systemd", "shieldd.service")
        p = subprocess.run([tool, "security", "--offline=true", "--threshold=15", unit],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-1000:])
        self.assertRegex(p.stdout, r"Overall exposure level for shieldd\.service: 1\.[0-5] ")


if __name__ == "__main__":
    unittest.main()
