#!/usr/bin/python3
"""shieldd against llama.cpp on the very same GGUF files, in one run (`make bench-compare`).

    make bench-compare LLAMA_CPP_BIN=DIR      # DIR: llama-bench, llama-server, llama-quantize
    /usr/bin/python3 tools/bench_compare.py --llama-bin DIR [--threads 2] [--rounds 2]
        [--items 200] [--types bf16,q8_0,q4_0] [--skip prefill,check,bulk] [--preset P]

Nothing of llama.cpp is built here: DIR holds the user's own build. Steps, each printed:
  files    .cache/cmp/2b-bf16.gguf from `mkmodel --preset gemma2-2b --seed 1 --gguf` (random
           weights, the real Gemma vocabulary), and its Q8_0 and Q4_0 from DIR/llama-quantize;
  peak     build/tools/peakbench at the start and at the end (FP32 FMA, BF16 dot, VNNI);
  prefill  per file type and round, llama-bench -p 64,512 -n 0 -r 1 and `shieldctl bench
           --tokens 64,512 --reps 1 --no-classify`, alternating which engine goes first;
  check    the 4-policy check of a 45-word message: llama-server (one slot) gets the four
           prompts' token ids as rendered by shieldd (`shieldctl render --ids`), four
           /completion calls with cache_prompt and n_predict 1; shieldd gets one /v1/classify
           with the same four policies (result cache off). Both warm: a first message fills the
           caches (template preamble), then --check-reps other messages are timed;
  bulk     --items messages: llama-server with 4 slots, 4 clients each sending an item's 4
           calls in turn, against `shieldctl scan --concurrency 4` through shieldd.
Precisions of shieldd: the BF16 file at bf16, Q8_0 and Q4_0 at int8 (its fastest for them).
Output: a table of both engines' figures and their ratio, and build/bench-compare/results.json.
The machine may be shared: every figure is the best of the rounds, and ratios compare runs
taken interleaved in the same minutes.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
POLICIES4 = ["hate", "harassment", "sexual", "dangerous"]
PRECISION = {"bf16": "bf16", "q8_0": "int8", "q4_0": "int8"}
WORDS = ("the a my our their this that some every people city night morning river market "
         "friend neighbour teacher doctor phone letter garden window street story music game "
         "wrote said asked found took gave made saw heard told walked opened closed played "
         "quickly slowly again never always often today yesterday because although while "
         "after before under over near with without about around quiet loud bright dark old "
         "new small large happy angry careful strange simple honest").split()


def log(msg):
    print("bench-compare: " + msg, flush=True)


def die(msg):
    print("bench-compare: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def run(cmd, timeout=3600, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-3000:]))
    return p.stdout


def message(rng, words=45):
    """A deterministic 45-word message of ordinary English words."""
    out = []
    for i in range(words):
        w = rng.choice(WORDS)
        out.append(w.capitalize() if i == 0 or out[-1].endswith(".") else w)
        if i % 11 == 10:
            out[-1] += "."
    return " ".join(out) + "."


# ---- files ------------------------------------------------------------------------------------

def make_files(a):
    d = os.path.join(TOP, ".cache", "cmp")
    os.makedirs(d, exist_ok=True)
    base = "2b" if a.preset == "gemma2-2b" else a.preset
    files = {"bf16": os.path.join(d, "%s-bf16.gguf" % base)}
    stamp = os.path.join(d, "%s-bf16.stamp" % base)
    version = run([a.mkmodel, "--version"]).strip()
    if not os.path.exists(files["bf16"]) or not os.path.exists(stamp) or \
            open(stamp).read().strip() != version:
        log("writing %s (mkmodel --preset %s --seed 1 --gguf)" % (files["bf16"], a.preset))
        # llama.cpp runs a gemma2 of 26, 42 or 46 layers only (its query scale depends on it).
        run([a.mkmodel, "--preset", a.preset, "--seed", "1", "--gguf", files["bf16"],
             "--quiet"] + ([] if a.preset.startswith("gemma2-") else ["--layers", "26"]))
        open(stamp, "w").write(version + "\n")
        for t in ("q8_0", "q4_0"):
            p = os.path.join(d, "%s-%s.gguf" % (base, t))
            if os.path.exists(p):
                os.unlink(p)
    for t in ("q8_0", "q4_0"):
        p = os.path.join(d, "%s-%s.gguf" % (base, t))
        if not os.path.exists(p):
            log("llama-quantize %s %s %s" % (files["bf16"], p, t.upper()))
            run([os.path.join(a.llama_bin, "llama-quantize"), files["bf16"], p + ".tmp",
                 t.upper(), str(a.threads)])
            os.rename(p + ".tmp", p)
        files[t] = p
    return files


# ---- peak and prefill ---------------------------------------------------------------------------

def peak(a):
    return json.loads(run([os.path.join(a.build, "tools", "peakbench"), "--threads",
                           str(a.threads), "--json"]))


def llama_prefill(a, path):
    out = run([os.path.join(a.llama_bin, "llama-bench"), "-m", path, "-p", "64,512", "-n", "0",
               "-r", "1", "-t", str(a.threads), "-o", "json"])
    rows = json.loads(out)
    return {str(r["n_prompt"]): r["avg_ts"] for r in rows if r["n_gen"] == 0}, rows[0]


def shieldd_prefill(a, path, prec):
    out = run([a.shieldctl, "bench", "--model", path, "--precision", prec, "--threads",
               str(a.threads), "--tokens", "64,512", "--reps", "1", "--no-classify", "--json"])
    j = json.loads(out)
    return j["prefill_tokens_per_s"], j


def prefill(a, files, res):
    best = {}
    for r in range(a.rounds):
        for i, t in enumerate(a.types):
            order = ("llama", "shieldd") if (r + i) % 2 == 0 else ("shieldd", "llama")
            for eng in order:
                if eng == "llama":
                    pp, meta = llama_prefill(a, files[t])
                    res["llama_build"] = meta.get("build_commit")
                else:
                    pp, meta = shieldd_prefill(a, files[t], PRECISION[t])
                    res.setdefault("shieldd_kernel", {})[t] = meta.get("kernel")
                    res.setdefault("shieldd_prefill_meta", {})[t] = meta
                log("prefill %-5s round %d %-7s %s" % (t, r + 1, eng, " ".join(
                    "pp%s %.1f" % (k, v) for k, v in sorted(pp.items(), key=lambda x: int(x[0])))))
                for k, v in pp.items():
                    key = (t, eng, k)
                    best[key] = max(best.get(key, 0), v)
    res["prefill"] = {"%s/%s/pp%s" % k: v for k, v in best.items()}


# ---- servers --------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, path, body, timeout=3600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        die("POST %s: HTTP %d: %s" % (path, r.status, data[:500]))
    return json.loads(data)


def wait_ready(port, path, proc, what, timeout=900):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            die("%s exited with %d while starting" % (what, proc.returncode))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.5)
    die("%s not ready after %d s" % (what, timeout))


class Server:
    def __init__(self, cmd, port, ready_path, what, logfile):
        self.what = what
        self.port = port
        self.log = open(logfile, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.start_s = wait_ready(port, ready_path, self.proc, what)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def llama_server(a, path, slots):
    port = free_port()
    cmd = [os.path.join(a.llama_bin, "llama-server"), "-m", path, "-t", str(a.threads),
           "-tb", str(a.threads), "-np", str(slots), "-c", str(4096 * slots), "--host",
           "127.0.0.1", "--port", str(port), "--no-webui"]
    return Server(cmd, port, "/health", "llama-server", os.path.join(a.out, "llama-server.log"))


def shieldd(a, path, prec):
    port = free_port()
    cmd = [a.shieldd, "-d", "-m", path, "-p", os.path.join(TOP, "policies"), "-t",
           str(a.threads), "--precision", prec, "--no-cache", "--pack-cache", "off",
           "--request-timeout", "3600s", "--listen", "tcp:127.0.0.1:%d" % port]
    return Server(cmd, port, "/readyz", "shieldd", os.path.join(a.out, "shieldd.log"))


def render_ids(a, path, text):
    ids = []
    for p in POLICIES4:
        out = run([a.shieldctl, "render", "--model", path, "--policies",
                   os.path.join(TOP, "policies"), "--policy", p, "--ids", text])
        ids.append([int(x) for x in out.split()])
    return ids


def llama_check(port, prompts):
    """The four calls of one message; returns (seconds, tokens computed)."""
    t0 = time.time()
    computed = 0
    for ids in prompts:
        r = post(port, "/completion", {"prompt": ids, "n_predict": 1, "cache_prompt": True,
                                       "temperature": 0})
        computed += r["timings"]["prompt_n"]
    return time.time() - t0, computed


def shieldd_check(port, text):
    t0 = time.time()
    r = post(port, "/v1/classify", {"text": text, "policies": POLICIES4})
    return time.time() - t0, r["usage"]["computed_tokens"], r["usage"]["prompt_tokens"]


def check(a, files, res):
    rng = random.Random(7)
    msgs = [message(rng) for _ in range(a.check_reps + 1)]
    out = {}
    for t in a.check_types:
        path = files[t]
        prompts = [render_ids(a, path, m) for m in msgs]
        srv = llama_server(a, path, 1)
        try:
            lt = [llama_check(srv.port, p) for p in prompts]
        finally:
            srv.stop()
        srv = shieldd(a, path, PRECISION[t])
        try:
            st = [shieldd_check(srv.port, m) for m in msgs]
        finally:
            srv.stop()
        out[t] = {
            "llama_s": min(x[0] for x in lt[1:]), "llama_cold_s": lt[0][0],
            "llama_computed": lt[1][1], "prompt_tokens": sum(len(p) for p in prompts[1]),
            "shieldd_s": min(x[0] for x in st[1:]), "shieldd_cold_s": st[0][0],
            "shieldd_computed": st[1][1], "shieldd_prompt_tokens": st[1][2],
            "words": len(msgs[1].split()),
        }
        log("check %-5s llama-server %.2f s (%d tokens computed), shieldd %.2f s (%d)" % (
            t, out[t]["llama_s"], out[t]["llama_computed"], out[t]["shieldd_s"],
            out[t]["shieldd_computed"]))
    res["check"] = out


# ---- bulk -------------------------------------------------------------------------------------

def llama_bulk(a, path, items):
    prompts = [render_ids(a, path, m) for m in items]
    srv = llama_server(a, path, 4)
    try:
        lock = threading.Lock()
        todo = list(range(len(items)))

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                for ids in prompts[i]:
                    post(srv.port, "/completion", {"prompt": ids, "n_predict": 1,
                                                   "cache_prompt": True, "temperature": 0})
        t0 = time.time()
        th = [threading.Thread(target=worker) for _ in range(4)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        return len(items) / (time.time() - t0)
    finally:
        srv.stop()


def shieldd_bulk(a, path, prec, items):
    inp = os.path.join(a.out, "bulk.jsonl")
    outp = os.path.join(a.out, "bulk-scores.jsonl")
    with open(inp, "w") as f:
        for i, m in enumerate(items):
            f.write(json.dumps({"id": i, "text": m}) + "\n")
    if os.path.exists(outp):
        os.unlink(outp)
    srv = shieldd(a, path, prec)
    try:
        cmd = [a.shieldctl, "scan", "--in", inp, "--out", outp, "--url",
               "http://127.0.0.1:%d" % srv.port, "--concurrency", "4"]
        for p in POLICIES4:
            cmd += ["--policy", p]
        t0 = time.time()
        run(cmd)
        dt = time.time() - t0
    finally:
        srv.stop()
    n = sum(1 for line in open(outp) if '"results"' in line)
    if n != len(items):
        die("shieldctl scan scored %d of %d items (see %s)" % (n, len(items), outp))
    return len(items) / dt


def bulk(a, files, res):
    rng = random.Random(11)
    items = [message(rng) for _ in range(a.items)]
    t = a.bulk_type
    l_ips = llama_bulk(a, files[t], items)
    s_ips = shieldd_bulk(a, files[t], PRECISION[t], items)
    res["bulk"] = {"type": t, "items": a.items, "llama_items_per_s": l_ips,
                   "shieldd_items_per_s": s_ips}
    log("bulk %s, %d items: llama-server %.3f items/s, shieldd %.3f items/s" % (
        t, a.items, l_ips, s_ips))


# ---- table ------------------------------------------------------------------------------------

def table(a, res):
    lines = []
    pk = res["peak"]
    lines.append("| | llama.cpp | shieldd | shieldd / llama.cpp |")
    lines.append("|---|---|---|---|")
    for t in a.types if "prefill" in res else []:
        for pp in ("64", "512"):
            l = res["prefill"].get("%s/llama/pp%s" % (t, pp))
            s = res["prefill"].get("%s/shieldd/pp%s" % (t, pp))
            if l and s:
                lines.append("| pp%s %s (tokens/s; shieldd %s, %s) | %.1f | %.1f | %.2fx |" % (
                    pp, t.upper(), PRECISION[t], res["shieldd_kernel"].get(t), l, s, s / l))
    for t, c in res.get("check", {}).items():
        lines.append("| 4-policy check, %s, %d words (s; tokens computed %d / %d) | %.2f | %.2f "
                     "| %.2fx |" % (t.upper(), c["words"], c["llama_computed"],
                                     c["shieldd_computed"], c["llama_s"], c["shieldd_s"],
                                     c["llama_s"] / c["shieldd_s"]))
    if "bulk" in res:
        b = res["bulk"]
        lines.append("| bulk, %s, %d items (items/s) | %.3f | %.3f | %.2fx |" % (
            b["type"].upper(), b["items"], b["llama_items_per_s"], b["shieldd_items_per_s"],
            b["shieldd_items_per_s"] / b["llama_items_per_s"]))
    lines.append("")
    lines.append("Peak, %d threads, best of the start and end of the run (wall; per CPU-second): "
                 "FP32 FMA %.0f GFLOP/s (%.0f), BF16 dot %s, int8 VNNI %s, int8 AVX2 %s" % (
                     a.threads, pk["fp32_fma_gflops"], pk["fp32_fma_gflops_per_cpu_s"],
                     "%.0f GFLOP/s (%.0f)" % (pk["bf16_dot_gflops"],
                                              pk["bf16_dot_gflops_per_cpu_s"])
                     if "bf16_dot_gflops" in pk else "none",
                     "%.0f GOP/s (%.0f)" % (pk["int8_vnni_gops"], pk["int8_vnni_gops_per_cpu_s"])
                     if "int8_vnni_gops" in pk else "none",
                     "%.0f GOP/s (%.0f)" % (pk["int8_avx2_gops"], pk["int8_avx2_gops_per_cpu_s"])
                     if "int8_avx2_gops" in pk else "none"))
    for t, m in res.get("shieldd_prefill_meta", {}).items():
        if "prefill_gflop" in m and "512" in m["prefill_gflop"]:
            g = m["prefill_gflop"]["512"] / 512 * res["prefill"]["%s/shieldd/pp512" % t]
            ref = pk.get("bf16_dot_gflops") if PRECISION[t] == "bf16" else pk.get("int8_vnni_gops")
            lines.append("shieldd pp512 %s: %.0f GFLOP/s computed (%.2f GFLOP per token), %.0f%% "
                         "of the FP32 FMA peak%s" % (
                             t.upper(), g, m["prefill_gflop"]["512"] / 512,
                             100 * g / pk["fp32_fma_gflops"],
                             ", %.0f%% of the %s peak" % (
                                 100 * g / ref, "BF16 dot" if PRECISION[t] == "bf16" else "VNNI")
                             if ref else ""))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="gemma2-2b",
                    help="mkmodel preset of the model (demo: a quick check of this script)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--check-reps", type=int, default=2)
    ap.add_argument("--types", default="bf16,q8_0,q4_0")
    ap.add_argument("--check-types", default="bf16,q8_0")
    ap.add_argument("--bulk-type", default="q8_0")
    ap.add_argument("--skip", default="", help="comma-separated: prefill, check, bulk")
    ap.add_argument("--resume", action="store_true",
                    help="keep the phases already in build/bench-compare/results.json")
    a = ap.parse_args()
    a.types = [t for t in a.types.split(",") if t]
    a.check_types = [t for t in a.check_types.split(",") if t]
    skip = set(s for s in a.skip.split(",") if s)
    for t in a.types + a.check_types + [a.bulk_type]:
        if t not in PRECISION:
            die("unknown file type '%s' (bf16, q8_0, q4_0)" % t)
    for b in ("llama-bench", "llama-server", "llama-quantize"):
        if not os.access(os.path.join(a.llama_bin, b), os.X_OK):
            die("%s: no executable %s (LLAMA_CPP_BIN must be the folder of llama.cpp's "
                "binaries)" % (a.llama_bin, b))
    a.build = os.path.abspath(a.build)
    a.mkmodel = os.path.join(a.build, "tools", "mkmodel")
    a.shieldctl = os.path.join(a.build, "shieldctl")
    a.shieldd = os.path.join(a.build, "shieldd")
    a.out = os.path.join(a.build, "bench-compare")
    os.makedirs(a.out, exist_ok=True)
    rpath = os.path.join(a.out, "results.json")
    res = {"threads": a.threads, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0]
           .split(":", 1)[1].strip(),
           "load_at_start": open("/proc/loadavg").read().split()[:3]}
    if a.resume and os.path.exists(rpath):
        old = json.load(open(rpath))
        res.update({k: v for k, v in old.items() if k not in ("started", "load_at_start")})
        res["resumed_from"] = old.get("started")
    files = make_files(a)
    p0 = peak(a)
    log("peak at start: %s" % json.dumps(p0))
    res.setdefault("peaks", []).append(p0)
    for name, fn in (("prefill", prefill), ("check", check), ("bulk", bulk)):
        if name not in skip and name not in res:
            fn(a, files, res)
            json.dump(res, open(rpath, "w"), indent=1)  # a later failure keeps this phase
    p1 = peak(a)
    log("peak at end: %s" % json.dumps(p1))
    res["peaks"].append(p1)
    res["peak"] = {k: max(p.get(k, 0) for p in res["peaks"]) for k in p0}
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res["table"] = table(a, res)
    json.dump(res, open(rpath, "w"), indent=1)
    print("\nshieldd vs llama.cpp (build %s), %s, %d threads, %s - %s\n" % (
        res.get("llama_build"), res["cpu"], a.threads, res["started"], res["finished"]))
    print(res["table"])


if __name__ == "__main__":
    main()
