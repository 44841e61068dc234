"""shieldctl scan across tasks and through failures: --shard auto from each scheduler's
environment (Slurm array ids and counts or min/max, Kubernetes JOB_COMPLETION_INDEX with
--shards or SHIELDCTL_SHARDS), the OUT.meta.json sidecar that makes a resume refuse an output of
another input, shard or setting, `shieldctl merge` (input order, every item once, each refusal
with its reason), several inputs and globs, --shard-by file; and faults while a scan runs: the
disk fills up (a small tmpfs), writes fail with EIO (an LD_PRELOAD shim), the daemon is killed
with -9 and restarted under the scan. After each, the same command finishes the output with
every id once."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from clients_common import (POLICIES, SHIELDCTL, SHIELDD, SLOW, ctl, make_model, rmtree,
                            wait_http_unix)

HERE = os.path.dirname(os.path.abspath(__file__))

_tmp = None
_model = None
_ref = None


def setUpModule():
    global _tmp, _model
    _tmp = tempfile.mkdtemp(prefix="shards-test-")
    _model = make_model(_tmp)


def tearDownModule():
    rmtree(_tmp)


def path(name):
    return os.path.join(_tmp, name)


def slurp(p):
    with open(p, "rb") as f:
        return f.read()


def write(name, text):
    with open(path(name), "w") as f:
        f.write(text)
    return path(name)


def items(name, n, prefix="x"):
    return write(name, "".join(json.dumps({"id": "%s%d" % (prefix, i),
                                           "text": "%s message %d" % (prefix, i)}) + "\n"
                               for i in range(n)))


def scan(inp, out, *args, env=None):
    ins = []
    for i in ([inp] if isinstance(inp, str) else inp):
        ins += ["--in", i]
    return ctl("scan", *ins, "--out", out, "--model", _model, "--policies", POLICIES, *args,
               env=env)


N_BIG = 600


def big():
    """N_BIG items (output ~190 kB) and their single-process scan."""
    global _ref
    inp = path("big.jsonl")
    if _ref is None:
        items("big.jsonl", N_BIG, "item-")
        r = scan(inp, path("big-ref.jsonl"))
        assert r.returncode == 0, r.stderr.decode()
        _ref = slurp(path("big-ref.jsonl"))
    return inp, _ref


SCHED = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
         "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX",
         "SHIELDCTL_SHARDS")


def ctl_env(*args, **kw):
    """ctl() with the scheduler variables set as given and the others removed."""
    env = dict(os.environ)
    for k in SCHED:
        env.pop(k, None)
    env.update({k: str(v) for k, v in kw.items()})
    env.pop("SHIELDD_SOCKET", None)
    env.pop("SHIELDD_URL", None)
    return subprocess.run([SHIELDCTL] + list(args), capture_output=True, env=env,
                          timeout=300 * SLOW)


class ShardAuto(unittest.TestCase):
    def shards(self, name, n_tasks, env_of, extra=()):
        inp = items(name + ".jsonl", 23)
        whole = path(name + "-whole.jsonl")
        self.assertEqual(scan(inp, whole).returncode, 0)
        outs = []
        for t in range(n_tasks):
            out = path("%s-%d.jsonl" % (name, t))
            r = ctl_env("scan", "--in", inp, "--out", out, "--model", _model, "--policies",
                        POLICIES, "--shard", "auto", *extra, **env_of(t))
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            outs.append(out)
        merged = path(name + "-merged.jsonl")
        r = ctl("merge", merged, *reversed(outs))   # any order
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(merged), slurp(whole))
        self.assertIn("merge: 23 items from %d shards" % n_tasks, r.stderr.decode())
        return outs

    def test_slurm_count(self):
        outs = self.shards("slurm", 4, lambda t: dict(SLURM_ARRAY_TASK_ID=t,
                                                      SLURM_ARRAY_TASK_COUNT=4))
        meta = json.loads(slurp(outs[2] + ".meta.json"))
        self.assertEqual(meta["shard"], {"index": 2, "count": 4, "by": "item"})
        self.assertEqual(meta["lines"], 6)   # items 2 6 10 14 18 22

    def test_slurm_min_max_step(self):
        # --array=1-7:2: tasks 1 3 5 7 are shards 0..3
        self.shards("slurm-step", 4, lambda t: dict(
            SLURM_ARRAY_TASK_ID=1 + 2 * t, SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_MAX=7,
            SLURM_ARRAY_TASK_STEP=2, SLURM_ARRAY_TASK_COUNT=4))

    def test_kubernetes_with_shards_flag_and_env(self):
        self.shards("k8s", 3, lambda t: dict(JOB_COMPLETION_INDEX=t), ("--shards", "3"))
        self.shards("k8s-env", 5, lambda t: dict(JOB_COMPLETION_INDEX=t, SHIELDCTL_SHARDS=5))

    def test_bad_environments(self):
        inp = items("env-bad.jsonl", 3)
        out = path("env-bad.out")
        for env, msg in [({}, "neither SLURM_ARRAY_TASK_ID"),
                         (dict(JOB_COMPLETION_INDEX=1), "--shards N or SHIELDCTL_SHARDS"),
                         (dict(JOB_COMPLETION_INDEX="x", SHIELDCTL_SHARDS=2),
                          "JOB_COMPLETION_INDEX='x' is not a number"),
                         (dict(SLURM_ARRAY_TASK_ID=0, SLURM_ARRAY_TASK_COUNT=3,
                               SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_MAX=7),
                          "sparse Slurm array"),
                         (dict(SLURM_ARRAY_TASK_ID=4, SHIELDCTL_SHARDS=4),
                          "SLURM_ARRAY_TASK_ID=4 is not below the shard count 4"),
                         (dict(SLURM_ARRAY_TASK_ID=1, SLURM_ARRAY_TASK_COUNT=2,
                               JOB_COMPLETION_INDEX=1), "both SLURM_ARRAY_TASK_ID and")]:
            r = ctl_env("scan", "--in", inp, "--out", out, "--model", _model, "--shard", "auto",
                        **env)
            self.assertEqual(r.returncode, 2, env)
            self.assertIn(msg, r.stderr.decode(), env)
            self.assertFalse(os.path.exists(out), env)
        r = ctl("scan", "--in", inp, "--out", out, "--model", _model, "--shard", "1/2",
                "--shards", "2")
        self.assertIn("--shards goes with --shard auto", r.stderr.decode())


class Refusals(unittest.TestCase):
    def test_resume_refuses_another_scans_output(self):
        a = items("ra.jsonl", 12, "a")
        b = items("rb.jsonl", 12, "b")
        out = path("r-1of3.jsonl")
        self.assertEqual(scan(a, out, "--shard", "1/3").returncode, 0)
        before = slurp(out)
        for args, inp, msg in [
                (["--shard", "2/3"], a, "belongs to another scan: it holds shard 1/3, this is "
                                        "shard 2/3"),
                (["--shard", "1/4"], a, "it holds shard 1/3, this is shard 1/4"),
                (["--shard", "1/3"], b, "input 1 differs"),
                (["--shard", "1/3", "--policy", "hate"], a, "it was scanned with policies [],"
                                                            " this scan has [\"hate\"]"),
                (["--shard", "1/3", "--field", "body"], a, "with field \"text\""),
                (["--shard", "1/3"], [a, b], "from 1 input files, this scan has 2")]:
            r = scan(inp, out, *args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(msg, r.stderr.decode(), args)
            self.assertEqual(slurp(out), before, args)
        # The same bytes under another name are the same input: resumes (nothing to do).
        shutil.copy(a, path("ra-copy.jsonl"))
        r = scan(path("ra-copy.jsonl"), out, "--shard", "1/3")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("0 items (4 resumed", r.stderr.decode())
        # An output without its sidecar is not resumed blindly.
        os.unlink(out + ".meta.json")
        r = scan(a, out, "--shard", "1/3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no %s.meta.json" % out, r.stderr.decode())
        # ... unless asked to adopt it (eval does, for a --scores file made elsewhere): then
        # its lines count, unchecked, and no sidecar vouches for them afterwards.
        r = scan(a, out, "--shard", "1/3", "--output-without-sidecar", "adopt")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("0 items (4 resumed", r.stderr.decode())
        self.assertFalse(os.path.exists(out + ".meta.json"))
        r = scan(a, out, "--output-without-sidecar", "keep")
        self.assertIn("--output-without-sidecar wants refuse or adopt", r.stderr.decode())
        # A sidecar that is not one.
        with open(out + ".meta.json", "w") as f:
            f.write("[1, 2]\n")
        r = scan(a, out, "--shard", "1/3")
        self.assertIn("not a shieldctl scan sidecar", r.stderr.decode())

    def test_merge_refusals(self):
        a = items("ma.jsonl", 10, "a")
        b = items("mb.jsonl", 10, "b")
        p = [path("m-%d.jsonl" % i) for i in range(3)]
        for i in range(3):
            self.assertEqual(scan(a, p[i], "--shard", "%d/3" % i).returncode, 0)
        other = path("m-other-1.jsonl")
        self.assertEqual(scan(b, other, "--shard", "1/3").returncode, 0)
        two = path("m-two-1.jsonl")
        self.assertEqual(scan(a, two, "--shard", "1/2").returncode, 0)
        out = path("m-out.jsonl")
        for files, msg in [
                ([p[0], p[2]], "shard 1/3 is missing (2 of 3 given)"),
                ([p[0], p[1], p[1], p[2]], "both hold shard 1/3"),
                ([p[0], other, p[2]], "is not from the same scan as %s: input 1 differs" % p[0]),
                ([p[0], two, p[2]], "is shard 1/2, %s is shard 0/3: not one split" % p[0]),
                ([path("m-*.jsonl")], "is not from the same scan"),
                ([path("nothing-*.jsonl")], "no file matches"),
                ([a], "has no %s.meta.json" % a)]:
            r = ctl("merge", out, *files)
            self.assertNotEqual(r.returncode, 0, files)
            self.assertIn(msg, r.stderr.decode(), files)
            self.assertFalse(os.path.exists(out), files)
        # A shard changed after its scan: a line dropped.
        with open(p[1], "rb") as f:
            lines = f.readlines()
        with open(p[1], "wb") as f:
            f.writelines(lines[:-1])
        r = ctl("merge", out, *p)
        self.assertIn("has 2 lines but its sidecar says 3", r.stderr.decode())
        # An unfinished shard (a scan killed mid-way leaves complete: false).
        self.assertEqual(scan(a, p[1], "--shard", "1/3").returncode, 0)   # resumes, completes
        meta = json.loads(slurp(p[1] + ".meta.json"))
        meta["complete"] = False
        with open(p[1] + ".meta.json", "w") as f:
            json.dump(meta, f)
        r = ctl("merge", out, *p)
        self.assertIn("is shard 1/3 of a scan that has not finished", r.stderr.decode())
        self.assertEqual(scan(a, p[1], "--shard", "1/3").returncode, 0)
        # The output is not a shard; the sidecars a glob brings are skipped.
        r = ctl("merge", p[0], *p)
        self.assertIn("OUT is one of the shard files", r.stderr.decode())
        r = ctl("merge", out, path("m-[0-9].jsonl*"))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        whole = path("m-whole.jsonl")
        self.assertEqual(scan(a, whole).returncode, 0)
        self.assertEqual(slurp(out), slurp(whole))
        self.assertEqual(ctl("merge").returncode, 2)


class Inputs(unittest.TestCase):
    def test_several_files_glob_and_shard_by_file(self):
        os.makedirs(path("parts"))
        names = []
        for k, n in enumerate([5, 0, 9, 3, 7]):
            names.append(items(os.path.join("parts", "p%d.jsonl" % k), n, "f%d-" % k))
        txt = write(os.path.join("parts", "z.txt"), "plain one\nplain two\n")
        whole = path("multi-whole.jsonl")
        r = scan([path("parts/p*.jsonl"), txt], whole)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        rows = [json.loads(l) for l in slurp(whole).decode().splitlines()]
        ids = [x["id"] for x in rows]
        self.assertEqual(ids, ["f0-%d" % i for i in range(5)] + ["f2-%d" % i for i in range(9)]
                         + ["f3-%d" % i for i in range(3)] + ["f4-%d" % i for i in range(7)]
                         + [1, 2])
        # The same list written out is the same scan (resumes with nothing to do).
        r = scan(names + [txt], whole)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("0 items (26 resumed", r.stderr.decode())
        # Whole files per task.
        outs = []
        for i in range(2):
            o = path("multi-file-%d.jsonl" % i)
            r = scan([path("parts/p*.jsonl"), txt], o, "--shard", "%d/2" % i, "--shard-by",
                     "file")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            outs.append(o)
        meta = json.loads(slurp(outs[1] + ".meta.json"))
        self.assertEqual(meta["file_items"], [None, 0, None, 3, None, 2])
        self.assertEqual(slurp(outs[1]).count(b"\n"), 5)
        merged = path("multi-merged.jsonl")
        r = ctl("merge", merged, *outs)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(merged), slurp(whole))
        # An error names its file when there are several.
        bad = write("bad2.jsonl", '{"text": 1}\n')
        o = path("multi-err.jsonl")
        r = scan([names[0], bad], o)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        last = json.loads(slurp(o).decode().splitlines()[-1])
        self.assertEqual(last["error"], '%s: line 1: field "text" is not a string' % bad)
        r = scan([names[0], "-"], path("x.jsonl"))
        self.assertIn("must be the only input", r.stderr.decode())


class Faults(unittest.TestCase):
    def test_disk_full_then_resume(self):
        inp, ref = big()
        mnt = path("small-fs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "cannot mount a tmpfs: %s" % r.stderr.decode())
        try:
            out = os.path.join(mnt, "out.jsonl")
            r = scan(inp, out)
            self.assertEqual(r.returncode, 1)
            err = r.stderr.decode()
            self.assertIn("%s: write: No space left on device" % out, err)
            self.assertIn("run the same command again to resume", err)
            got = slurp(out)
            self.assertTrue(0 < len(got) < len(ref))
            cut = got[:got.rfind(b"\n") + 1]
            self.assertEqual(ref[:len(cut)], cut)     # a prefix of the answer, maybe torn
            subprocess.run(["mount", "-o", "remount,size=4m", mnt], check=True)
            r = scan(inp, out)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn("resumed", r.stderr.decode())
            self.assertEqual(slurp(out), ref)
        finally:
            subprocess.run(["umount", mnt])

    def test_eio_then_resume(self):
        inp, ref = big()
        shim = path("write_fault.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim,
                            os.path.join(HERE, "fault", "write_fault.c"), "-ldl"],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = path("eio.jsonl")
        after = len(ref) // 2 + 17        # in the middle of a line
        r = ctl("scan", "--in", inp, "--out", out, "--model", _model, "--policies", POLICIES,
                env={"LD_PRELOAD": shim, "SG_FAULT_PATH": "/eio.jsonl",
                     "SG_FAULT_AFTER": str(after), "SG_FAULT_ERRNO": "5"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: write: Input/output error" % out, r.stderr.decode())
        got = slurp(out)
        self.assertEqual(got, ref[:after])           # a torn line at the end
        self.assertFalse(json.loads(slurp(out + ".meta.json"))["complete"])
        r = scan(inp, out)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        done = ref[:after].count(b"\n")
        self.assertIn("%d items (%d resumed" % (N_BIG - done, done), r.stderr.decode())
        self.assertEqual(slurp(out), ref)
        # fsync failing (the data may not be on the disk): an error, the output not marked
        # complete, and the next run checks it again.
        os.unlink(out)
        os.unlink(out + ".meta.json")
        r = ctl("scan", "--in", inp, "--out", out, "--model", _model, "--policies", POLICIES,
                env={"LD_PRELOAD": shim, "SG_FAULT_PATH": "/eio.jsonl", "SG_FAULT_FSYNC": "1",
                     "SG_FAULT_AFTER": str(len(ref)), "SG_FAULT_ERRNO": "5"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: fsync: Input/output error" % out, r.stderr.decode())
        self.assertFalse(json.loads(slurp(out + ".meta.json"))["complete"])
        r = scan(inp, out)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(out), ref)
        self.assertTrue(json.loads(slurp(out + ".meta.json"))["complete"])

    def test_daemon_killed_and_restarted_under_scan(self):
        inp, ref = big()
        d = tempfile.mkdtemp(prefix="d-", dir=_tmp)
        sock = os.path.join(d, "s.sock")

        def start():
            log = open(os.path.join(d, "stderr.log"), "ab")
            p = subprocess.Popen([SHIELDD, "-d", "-m", _model, "-p", POLICIES, "--listen",
                                  "unix:" + sock], stdout=log, stderr=subprocess.STDOUT)
            log.close()
            return p

        daemon = start()
        self.assertTrue(wait_http_unix(sock, time.time() + 60 * SLOW))
        out = path("restart.jsonl")
        p = subprocess.Popen([SHIELDCTL, "scan", "--in", inp, "--out", out, "--socket", sock,
                              "--concurrency", "4"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 120 * SLOW
            while time.time() < deadline and (not os.path.exists(out) or
                                              os.path.getsize(out) < len(ref) // 3):
                time.sleep(0.01)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            mid = os.path.getsize(out)
            self.assertLess(mid, len(ref), "the scan finished before the kill")
            time.sleep(1.0)                          # the scan retries meanwhile
            daemon = start()
            _, err = p.communicate(timeout=180 * SLOW)
            self.assertEqual(p.returncode, 0, err.decode())
            self.assertEqual(slurp(out), ref)         # every id once, in order
            retries = int(err.decode().split(" retries")[0].rsplit(" ", 1)[1])
            self.assertGreater(retries, 0, err.decode())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            daemon.terminate()
            daemon.wait(30)

    def test_unreachable_daemon_gives_up_after_retry_for(self):
        inp = items("gone.jsonl", 3)
        t0 = time.time()
        r = ctl("scan", "--in", inp, "--out", path("gone.out"), "--socket",
                path("nobody.sock"), "--retry-for", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("gave up after retrying for 1 s", r.stderr.decode())
        self.assertGreaterEqual(time.time() - t0, 1.0)


if __name__ == "__main__":
    unittest.main()
