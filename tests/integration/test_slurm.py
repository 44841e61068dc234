"""Bulk scans on a real Slurm: a single-node cluster (Debian's slurm-wlm and munge) started by
the test, its config and state in a temporary folder, slurmctld and slurmd on loopback. The
examples in deploy/slurm run as they are: submit.sh sends a 4-task array of scan.sbatch over
2000 items and a dependent merge.sbatch, and the merged output equals a single-process scan
byte for byte. Then one task is killed mid-way and resubmitted alone (sbatch --array=2): it
resumes its own shard, the other shards are not touched, and the merge is again the same."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from clients_common import POLICIES, SHIELDCTL, SLOW, TOP, ctl, free_port, make_model, rmtree


DEPLOY = os.path.join(TOP, "deploy", "slurm")
N_ITEMS = 2000
SHARDS = 4

_tmp = None
_model = None
_slurm = None
_input = None
_ref = None


class Slurm:
    """munged, slurmctld and slurmd of a one-node cluster in `root`; stop() ends them."""

    def __init__(self, root):
        self.root = root
        self.procs = []
        os.makedirs(root, mode=0o755)
        os.chmod(os.path.dirname(root), 0o755)
        mdir = os.path.join(root, "munge")
        os.makedirs(mdir, mode=0o755)
        key = os.path.join(mdir, "munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(1024))
        self.munge_sock = os.path.join(mdir, "sock")
        self.spawn("munged", ["munged", "--foreground", "--force", "--socket", self.munge_sock,
                              "--key-file", key, "--pid-file", os.path.join(mdir, "pid"),
                              "--log-file", os.path.join(mdir, "log"),
                              "--seed-file", os.path.join(mdir, "seed")])
        self.wait_for(lambda: os.path.exists(self.munge_sock), "munged")
        self.host = socket.gethostname().split(".")[0]
        for d in ("state", "spool", "log"):
            os.makedirs(os.path.join(root, d))
        self.conf = os.path.join(root, "slurm.conf")
        with open(self.conf, "w") as f:
            f.write(self.config(free_port(), free_port()))
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", self.conf])
        self.spawn("slurmd", ["slurmd", "-D", "-f", self.conf, "-N", "sgnode"])
        self.wait_for(self.node_idle, "the node to come up (slurmd)")

    def config(self, ctld_port, d_port):
        r = self.root
        return "\n".join([
            "ClusterName=sgtest",
            "SlurmctldHost=%s(127.0.0.1)" % self.host,
            "SlurmctldPort=%d" % ctld_port,
            "SlurmdPort=%d" % d_port,
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "AuthInfo=socket=%s" % self.munge_sock,
            "StateSaveLocation=%s/state" % r,
            "SlurmdSpoolDir=%s/spool" % r,
            "SlurmctldPidFile=%s/slurmctld.pid" % r,
            "SlurmdPidFile=%s/slurmd.pid" % r,
            "SlurmctldLogFile=%s/log/slurmctld.log" % r,
            "SlurmdLogFile=%s/log/slurmd.log" % r,
            # No cgroups in a container: process groups track the tasks.
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MinJobAge=600",
            # 4 CPUs declared on a smaller machine, so the 4 tasks run at once.
            "SlurmdParameters=config_overrides",
            "NodeName=sgnode NodeHostname=%s NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 "
            "State=UNKNOWN" % self.host,
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            ""])

    def spawn(self, name, argv):
        log = open(os.path.join(self.root, name + ".out"), "wb")
        self.procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT),
                           log))

    def wait_for(self, cond, what, limit=60):
        deadline = time.time() + limit * SLOW
        while time.time() < deadline:
            if cond():
                return
            for name, p, _ in self.procs:
                if p.poll() is not None:
                    raise AssertionError("%s exited (%d): %s" % (name, p.returncode,
                                                                self.logs()))
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s: %s" % (what, self.logs()))

    def logs(self):
        out = []
        for dirpath, _, files in os.walk(self.root):
            for fn in files:
                if fn.endswith((".log", ".out")) and "shieldd-" not in fn:
                    with open(os.path.join(dirpath, fn), "rb") as f:
                        out.append("--- %s\n%s" % (fn, f.read()[-1500:].decode(errors="replace")))
        return "\n".join(out)

    def run(self, *argv, check=True):
        r = subprocess.run(list(argv), capture_output=True, env=self.env, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s%s" % (argv, r.stdout.decode(), r.stderr.decode()))
        return r.stdout.decode()

    def node_idle(self):
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, env=self.env)
        return r.returncode == 0 and r.stdout.decode().strip() == "idle"

    def job_states(self, jobid):
        """{'<job>_<task>' or '<job>': state} of every job of `jobid`."""
        out = self.run("scontrol", "-o", "show", "job", str(jobid))
        states = {}
        for line in out.splitlines():
            kv = dict(re.findall(r"(\w+)=(\S*)", line))
            name = kv["JobId"] if kv.get("ArrayTaskId") in (None, "") else \
                "%s_%s" % (kv["ArrayJobId"], kv["ArrayTaskId"])
            states[name] = kv["JobState"]
        return states

    def wait_job(self, jobid, limit=120):
        done = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
        deadline = time.time() + limit * SLOW
        while time.time() < deadline:
            st = self.job_states(jobid)
            if st and all(s in done for s in st.values()):
                return st
            time.sleep(0.2)
        raise AssertionError("job %s did not end: %s\n%s" % (jobid, self.job_states(jobid),
                                                            self.logs()))

    def stop(self):
        subprocess.run(["scancel", "--full", "--user=root"], env=self.env,
                       capture_output=True)
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()


def setUpModule():
    global _tmp, _model, _slurm, _input
    _tmp = tempfile.mkdtemp(prefix="slurm-test-")
    try:
        _model = make_model(_tmp)
        _input = os.path.join(_tmp, "items.jsonl")
        with open(_input, "w") as f:
            for i in range(N_ITEMS):
                f.write(json.dumps({"id": "doc-%d" % i,
                                    "text": "item %d: %s" % (i, ["a note about gardening",
                                                                 "how do I pick a lock",
                                                                 "you are all idiots",
                                                                 "caf\u00e9 \u2603"][i % 4])})
                        + "\n")
        _slurm = Slurm(os.path.join(_tmp, "slurm"))
    except BaseException:
        if _slurm:
            _slurm.stop()
        rmtree(_tmp)
        raise


def tearDownModule():
    if _slurm:
        _slurm.stop()
    rmtree(_tmp)


def slurp(p):
    with open(p, "rb") as f:
        return f.read()


def reference():
    """The single-process scan of the whole input, and its sidecar."""
    global _ref
    if _ref is None:
        out = os.path.join(_tmp, "whole.jsonl")
        r = ctl("scan", "--in", _input, "--out", out, "--model", _model, "--policies", POLICIES,
                "--threads", "1")
        assert r.returncode == 0, r.stderr.decode()
        _ref = (slurp(out), json.loads(slurp(out + ".meta.json")))
    return _ref


def scan_env(outdir):
    return {"SCAN_IN": _input, "SCAN_OUT": outdir, "SHIELD_MODEL": _model,
            "SHIELD_POLICIES": POLICIES, "SHIELDCTL": SHIELDCTL,
            "SBATCH_ARGS": "--chdir=%s --cpus-per-task=1 --mem=500M" % outdir}


class ArrayJob(unittest.TestCase):
    def test_submit_scan_and_merge_equals_one_scan(self):
        ref, ref_meta = reference()
        outdir = os.path.join(_tmp, "run1")
        os.makedirs(outdir)
        cache = os.path.join(_tmp, "pack-cache")   # one packed copy for the node's 4 tasks
        env = dict(_slurm.env, **scan_env(outdir), SHIELD_PACK_CACHE=cache)
        r = subprocess.run([os.path.join(DEPLOY, "submit.sh"), str(SHARDS)], env=env,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        m = re.match(r"scan job (\d+) \(array 0-3\), merge job (\d+)", r.stdout.decode())
        self.assertTrue(m, r.stdout.decode())
        scan_id, merge_id = m.groups()
        st = _slurm.wait_job(scan_id)
        self.assertEqual(sorted(st.values()), ["COMPLETED"] * SHARDS, _slurm.logs())
        st = _slurm.wait_job(merge_id)
        self.assertEqual(list(st.values()), ["COMPLETED"],
                         slurp(os.path.join(outdir, "shieldd-merge-%s.log" % merge_id)))
        # Each task scanned its own quarter, in-process, as shard i/4 of the Slurm array.
        for i in range(SHARDS):
            meta = json.loads(slurp(os.path.join(outdir, "part-%d.jsonl.meta.json" % i)))
            self.assertEqual(meta["shard"], {"index": i, "count": SHARDS, "by": "item"})
            self.assertEqual(meta["lines"], N_ITEMS // SHARDS)
            log = slurp(os.path.join(outdir, "shieldd-scan-%s_%d.log" % (scan_id, i))).decode()
            self.assertIn("scan: %d items (0 resumed" % (N_ITEMS // SHARDS), log)
        self.assertEqual(slurp(os.path.join(outdir, "result.jsonl")), ref)
        self.assertEqual(json.loads(slurp(os.path.join(outdir, "result.jsonl.meta.json"))),
                         ref_meta)
        self.assertEqual(len([f for f in os.listdir(cache) if f.endswith(".sgpack")]), 1)

    def test_killed_task_resubmitted_resumes_its_shard_only(self):
        ref, _ = reference()
        outdir = os.path.join(_tmp, "run2")
        os.makedirs(outdir)
        env = dict(_slurm.env, **scan_env(outdir), SCAN_SHARDS=str(SHARDS))
        sbatch = ["sbatch", "--parsable", "--chdir=" + outdir, "--cpus-per-task=1",
                  "--mem=500M"]
        r = subprocess.run(sbatch + ["--array=0-3", os.path.join(DEPLOY, "scan.sbatch")],
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        jobid = r.stdout.decode().strip()
        part2 = os.path.join(outdir, "part-2.jsonl")
        pid = self.kill_when_started(part2)
        st = _slurm.wait_job(jobid)
        self.assertEqual(st["%s_2" % jobid], "FAILED", st)
        self.assertEqual([st["%s_%d" % (jobid, i)] for i in (0, 1, 3)], ["COMPLETED"] * 3, st)
        before = {i: (slurp(os.path.join(outdir, "part-%d.jsonl" % i)),
                      os.stat(os.path.join(outdir, "part-%d.jsonl" % i)).st_mtime_ns)
                  for i in (0, 1, 3)}
        done = slurp(part2).count(b"\n")
        self.assertGreater(done, 0)
        self.assertLess(done, N_ITEMS // SHARDS, "task 2 finished before it was killed")
        meta = json.loads(slurp(part2 + ".meta.json"))
        self.assertFalse(meta["complete"])
        # The merge refuses the unfinished shard.
        r = ctl("merge", os.path.join(outdir, "result.jsonl"), os.path.join(outdir, "part-*"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("part-2.jsonl is shard 2/4 of a scan that has not finished",
                      r.stderr.decode())
        # Resubmit task 2 alone: a one-task array that SCAN_SHARDS keeps shard 2/4.
        r = subprocess.run(sbatch + ["--array=2", os.path.join(DEPLOY, "scan.sbatch")],
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        again = r.stdout.decode().strip()
        st = _slurm.wait_job(again)
        self.assertEqual(list(st.values()), ["COMPLETED"], _slurm.logs())
        log = slurp(os.path.join(outdir, "shieldd-scan-%s_2.log" % again)).decode()
        self.assertIn("scan: %d items (%d resumed" % (N_ITEMS // SHARDS - done, done), log)
        for i, (data, mtime) in before.items():
            path = os.path.join(outdir, "part-%d.jsonl" % i)
            self.assertEqual(slurp(path), data)
            self.assertEqual(os.stat(path).st_mtime_ns, mtime, "shard %d was written again" % i)
        r = ctl("merge", os.path.join(outdir, "result.jsonl"), os.path.join(outdir, "part-*"))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(slurp(os.path.join(outdir, "result.jsonl")), ref)

    def kill_when_started(self, out):
        """SIGKILL the shieldctl writing `out` once it has written a few lines."""
        deadline = time.time() + 60 * SLOW
        pid = None
        while time.time() < deadline:
            pid = pid or self.writer_of(out)
            if pid and os.path.exists(out) and slurp(out).count(b"\n") >= 3:
                os.kill(pid, signal.SIGKILL)
                return pid
            time.sleep(0.005)
        raise AssertionError("task 2 never started writing %s: %s" % (out, _slurm.logs()))

    @staticmethod
    def writer_of(out):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"shieldctl") and out.encode() in argv:
                return int(pid)
        return None


if __name__ == "__main__":
    unittest.main()
