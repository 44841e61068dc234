#!/bin/sh
# tools/bench.sh: the benchmarks of docs/BENCHMARKS.md (`make bench`). Not part of `make test`.
#
#   1. generates the random-weight Gemma-2-2B model (BF16, 5.2 GB, seed 1) into .cache/bench-2b
#      once (build/tools/mkmodel --preset gemma2-2b), and uses the demo model (make demo-model);
#   2. runs `shieldctl bench --json` on each, per precision (BENCH_PRECISIONS, default
#      "bf16 int8 f32"), with BENCH_THREADS threads (default 2) and BENCH_REPS runs (default 3);
#   3. prints a table and the deviation of P(violation) of int8 and bf16 against f32 on the same
#      message (llama.cpp on the same files and in the same run: `make bench-compare`);
#   4. runs the tokenizer's own benchmark (build/tools/tok_bench) when it is built.
# Every JSON line is kept in $BUILD/bench/*.json.
# Environment: BUILD (default build), BENCH_MODELS (default ".cache/bench-2b .cache/demo-model"),
# BENCH_TOKENS (default 64,128,512).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${BUILD:-build}
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-3}
tokens=${BENCH_TOKENS:-64,128,512}
precisions=${BENCH_PRECISIONS:-bf16 int8 f32}
models=${BENCH_MODELS:-.cache/bench-2b .cache/demo-model}
py=${PYTHON:-/usr/bin/python3}
out="$build/bench"
mkdir -p "$out"

if [ ! -f .cache/bench-2b/.stamp ] && echo "$models" | grep -q bench-2b; then
    echo "bench: generating .cache/bench-2b (Gemma-2-2B shapes, random BF16 weights, 5.2 GB)"
    "$build/tools/mkmodel" --preset gemma2-2b --seed 1 --out .cache/bench-2b --quiet
    "$build/tools/mkmodel" --version > .cache/bench-2b/.stamp
fi

echo "bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cpus," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), $threads threads, best of $reps"
for m in $models; do
    [ -d "$m" ] || { echo "bench: $m is missing, skipped"; continue; }
    name=$(basename "$m")
    rm -f "$out/$name"-*.json
    for p in $precisions; do
        j="$out/$name-$p.json"
        "$build/shieldctl" bench --model "$m" --precision "$p" --threads "$threads" \
            --reps "$reps" --tokens "$tokens" --json > "$j" 2>"$out/$name-$p.log" || {
            echo "bench: $name $p failed:"; cat "$out/$name-$p.log"; exit 1; }
    done
done

"$py" - "$out" $models <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
for m in models:
    name = os.path.basename(m)
    runs = {}
    for p in ("f32", "bf16", "int8"):
        f = os.path.join(out, "%s-%s.json" % (name, p))
        if os.path.exists(f):
            runs[p] = json.load(open(f))
    if not runs:
        continue
    print("\n%s" % name)
    lens = sorted({int(k) for r in runs.values() for k in r["prefill_tokens_per_s"]})
    print("  %-5s %s  %9s %9s %8s %8s" % ("prec", " ".join("%9s" % ("pp%d" % n) for n in lens),
                                          "cls4 ms", "cls4 med", "load s", "rss MB"))
    for p, r in runs.items():
        pf = r["prefill_tokens_per_s"]
        print("  %-5s %s  %9.1f %9.1f %8.2f %8.0f" % (
            p, " ".join("%9.1f" % pf.get(str(n), 0) for n in lens),
            r.get("classify_4_policies_ms", 0), r.get("classify_4_policies_ms_median", 0),
            r["load_s"], r["rss_mb"]))
    for p, r in runs.items():
        pf, pm = r["prefill_tokens_per_s"], r["prefill_tokens_per_s_median"]
        print("  %-5s median: %s" % (p, " ".join("pp%s %.1f" % (k, pm[k]) for k in sorted(pm, key=int))))
    # The reference is f32; without an f32 run, bf16 where it computes in f32 (AVX2 machines:
    # the same kernel and values as f32 for a BF16 model).
    refname = "f32" if "f32" in runs else "bf16"
    ref = runs.get(refname)
    for p in ("bf16", "int8"):
        if p == refname or p not in runs or not ref:
            continue
        if ref.get("classify_probabilities") and runs[p].get("classify_probabilities"):
            d = max(abs(a - b) for a, b in zip(runs[p]["classify_probabilities"], ref["classify_probabilities"]))
            print("  P(violation) %s vs %s, same message, 4 policies: max |dP| %.4f  (%s: %s; %s: %s)" % (
                p, refname, d, refname, ", ".join("%.4f" % v for v in ref["classify_probabilities"]),
                p, ", ".join("%.4f" % v for v in runs[p]["classify_probabilities"])))
    r = runs.get("bf16") or next(iter(runs.values()))
    if "classify_prompt_tokens" in r:
        print("  classify: %d prompt tokens in 4 prompts, %d computed (warm; cold: %s)" % (
            r["classify_prompt_tokens"], r["classify_computed_tokens"], ", ".join(
                "%s %.0f ms" % (p, rr["classify_cold_ms"]) for p, rr in runs.items()
                if "classify_cold_ms" in rr)))
    if "tokenizer_mb_per_s" in r:
        print("  tokenizer: %.1f MB/s" % r["tokenizer_mb_per_s"])
PY

if [ -x "$build/tools/tok_bench" ]; then
    echo
    "$build/tools/tok_bench"
fi
