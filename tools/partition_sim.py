#!/usr/bin/python3
"""How evenly the engine's thread pool would share a 2B prefill among 8..64 threads.

    /usr/bin/python3 tools/partition_sim.py [--tokens 512] [--threads 1,2,8,16,32,64]

A simulation of the partition as the engine builds it (no timing): every sg_pool_run is one
barrier-to-barrier step whose tasks are taken in order by whichever thread is free (the pool's
atomic counter), each costing its multiply-adds. Per step, efficiency = work / (threads x the
time of the busiest thread); for the pass, the work over the sum of the steps' spans. Steps of
one layer of the Gemma-2-2B shape at m tokens:
  matrix products  dnnl (bf16, int8): one task per 256 output columns (CHUNK_COLS of
                   engine/mm/matmul_dnnl.c) -> q 8, k 4, v 4, o 9, gate 36, up 36, down 9 tasks,
                   and now per row block too where the chunks alone do not share out evenly
                   (mm_row_blocks: blocks of at least 32 of the pass's 256 rows);
                   avx2 (f32): one task per 4 panels of 16 columns (NP x NR of gemm_avx2.c);
  attention        one task per (block of 8 rows x the 2 query heads of a KV head, KV head),
                   each costing the keys its rows see (causal; a 4096 window on even layers).
The element-wise steps (norms, RoPE, GELU) split by rows and balance to within a row.
A step with fewer tasks than threads leaves threads idle: that is what bounds the scaling.
"""

import argparse

D, FF, NH, NKV, HD, LAYERS, WINDOW = 2304, 9216, 8, 4, 256, 26, 4096
PASS_ROWS = 256
MATS = [("q", 2048, D), ("k", 1024, D), ("v", 1024, D), ("o", D, 2048), ("gate", FF, D),
        ("up", FF, D), ("down", D, FF)]


def span(costs, threads):
    """Greedy in-order dynamic assignment: the finish time of the busiest thread."""
    free = [0.0] * threads
    for c in costs:
        i = min(range(threads), key=free.__getitem__)
        free[i] += c
    return max(free)


def row_blocks(n_chunks, m, threads):
    """engine/mm/matmul_dnnl.c, mm_row_blocks."""
    best, best_loss = 1, 1e9
    for rb in range(1, min(max(m // 32, 1), 64) + 1):
        tasks = n_chunks * rb
        loss = -(-tasks // threads) * threads / tasks
        if loss < best_loss - 1e-9:
            best, best_loss = rb, loss
        if loss <= 1 / 0.95:
            break
    return best


def mat_steps(m, cols_per_task, threads, split_rows):
    steps = []
    for name, n, k in MATS:
        chunks = [min(cols_per_task, n - c0) for c0 in range(0, n, cols_per_task)]
        rb = row_blocks(len(chunks), m, threads) if split_rows else 1
        per = (m + rb - 1) // rb
        rows = [min(per, m - r0) for r0 in range(0, m, per)]
        steps.append((name, [c * k * r for r in rows for c in chunks]))
    return steps


def attn_step(p0, m, sliding):
    """Rows p0..p0+m-1 of a pass: one task per (8 rows x 2 query heads, KV head)."""
    tasks = []
    for kvh in range(NKV):
        for r0 in range(p0, p0 + m, 8):
            keys = 0
            for p in range(r0, min(r0 + 8, p0 + m)):
                keys += min(p + 1, WINDOW) if sliding else p + 1
            tasks.append(keys * HD * 2 * (NH // NKV) * 2)
    return ("attn", tasks)


def simulate(tokens, threads, cols_per_task, split_rows):
    work = 0.0
    total_span = 0.0
    per_step = {}
    for p0 in range(0, tokens, PASS_ROWS):  # the forward pass works in passes of 256 rows
        m = min(PASS_ROWS, tokens - p0)
        for layer in range(LAYERS):
            steps = mat_steps(m, cols_per_task, threads, split_rows) + [
                attn_step(p0, m, layer % 2 == 0)]
            for name, tasks in steps:
                w = sum(tasks)
                s = span(tasks, threads)
                work += w
                total_span += s
                a = per_step.setdefault(name, [0.0, 0.0, len(tasks)])
                a[0] += w
                a[1] += s
    return work / (threads * total_span), {k: (v[0] / (threads * v[1]), v[2])
                                           for k, v in per_step.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", default="1,2,8,16,32,64")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    for label, cols, split in (("dnnl, 256 columns per task (before)", 256, False),
                               ("dnnl, 256 columns x row blocks (now)", 256, True),
                               ("avx2, 64 columns per task", 64, False)):
        print("%s, pp%d: efficiency (work / (threads x span)); per step, efficiency and tasks"
              % (label, a.tokens))
        for t in threads:
            eff, steps = simulate(a.tokens, t, cols, split)
            print("  %3d threads: %5.1f%%  (%s)" % (t, 100 * eff, ", ".join(
                "%s %.0f%%/%d" % (k, 100 * e, n) for k, (e, n) in steps.items())))


if __name__ == "__main__":
    main()
