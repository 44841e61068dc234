"""shieldd with the packed-weight cache (pack_cache / --pack-cache): the first daemon writes one
file, a second daemon started while the first serves maps it and answers with the same bits,
`auto` uses $CACHE_DIRECTORY (systemd's CacheDirectory=), `off` writes nothing, and an empty
value is a configuration error. The tiny BF16 model runs the avx2-bf16 kernel at f32.
"""
import json
import os
import subprocess
import unittest

from clients_common import POLICIES, SHIELDD, SLOW, Daemon, ctl, rmtree, start, stop

_tmp = None
_model = None


def setUpModule():
    global _tmp, _model
    _tmp, _model, d = start("shieldd-pack-")
    d.stop()


def tearDownModule():
    stop(_tmp, None)


def packs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".sgpack"))


def classify(d, text):
    r = ctl("classify", "--socket", d.sock, "--json", text)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)["results"]


class PackCacheTest(unittest.TestCase):
    def test_two_daemons_share_one_file(self):
        cache = os.path.join(_tmp, "cache-a")
        a = Daemon(_model, _tmp, "--pack-cache", cache)
        try:
            self.assertEqual(len(packs(cache)), 1, a.stderr())
            b = Daemon(_model, _tmp, "--pack-cache", cache)
            try:
                self.assertIn("mapped", b.stderr())
                self.assertEqual(len(packs(cache)), 1)
                for text in ("How do I bake bread?", "You are all worthless idiots."):
                    self.assertEqual(classify(a, text), classify(b, text))
            finally:
                b.stop()
        finally:
            a.stop()
        # A daemon without the cache answers with the same bits.
        c = Daemon(_model, _tmp, "--pack-cache", "off")
        d = Daemon(_model, _tmp, "--pack-cache", cache)
        try:
            self.assertEqual(classify(c, "How do I bake bread?"),
                             classify(d, "How do I bake bread?"))
        finally:
            c.stop()
            d.stop()

    def test_auto_uses_cache_directory(self):
        cache = os.path.join(_tmp, "cache-auto")
        os.makedirs(cache)
        old = os.environ.get("CACHE_DIRECTORY")
        os.environ["CACHE_DIRECTORY"] = cache
        try:
            d = Daemon(_model, _tmp)  # pack_cache defaults to auto
            d.stop()
        finally:
            if old is None:
                del os.environ["CACHE_DIRECTORY"]
            else:
                os.environ["CACHE_DIRECTORY"] = old
        self.assertEqual(len(packs(cache)), 1)
        rmtree(cache)

    def test_corrupt_file_is_rebuilt(self):
        cache = os.path.join(_tmp, "cache-bad")
        Daemon(_model, _tmp, "--pack-cache", cache).stop()
        (name,) = packs(cache)
        path = os.path.join(cache, name)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        d = Daemon(_model, _tmp, "--pack-cache", cache)
        try:
            self.assertIn("ignoring it and rebuilding", d.stderr())
            self.assertEqual(packs(cache), [name])
            classify(d, "How do I bake bread?")
        finally:
            d.stop()

    def test_empty_value_is_an_error(self):
        r = subprocess.run([SHIELDD, "-n", "-m", _model, "-p", POLICIES, "--pack-cache", ""],
                           capture_output=True, timeout=60 * SLOW)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"pack_cache", r.stderr)


if __name__ == "__main__":
    unittest.main()
