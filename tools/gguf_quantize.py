#!/usr/bin/python3
"""GGUF test-model tools for shieldd (numpy only; run with /usr/bin/python3).

  gguf_quantize.py quantize IN.gguf OUT.gguf --type {q8_0,q4_0,q4_k,q5_k,q6_k,mix}
                            [--embd-type T]
      Re-write a GGUF with every 2-D weight quantized to T (1-D tensors such as the norms stay
      F32; `mix` is a Q4_K_M-like mixture of Q4_K, Q5_K, Q6_K and Q8_0, see MIX). The tied token embedding gets --embd-type, by default what llama.cpp picks for the
      output tensor: Q6_K when its rows are a multiple of 256, else Q8_0. A matrix whose rows do
      not fit T's block falls back to Q8_0 (as llama.cpp's K-quant fallback does).
  gguf_quantize.py synth OUT.gguf [--seed N] [--vocab V] [--d-model D] [--layers L]
                         [--heads H] [--kv-heads K] [--head-dim HD] [--ffn F] [--window W]
      A random Gemma 2 in F32, laid out as llama.cpp's converter writes it (norms stored as
      1 + w), with no tokenizer metadata.
  gguf_quantize.py ref MODEL.gguf --tokens 2,17,354 [--all]
      Float64 reference logits (Hugging Face Gemma2ForCausalLM semantics, eager attention)
      of any GGUF this tool can read, quantized ones included (weights dequantized first).
      Output: the format of tests/fixtures/tiny-a/ref_f64_last.txt.
  gguf_quantize.py seeds DIR
      Small GGUF files (every metadata type, every supported tensor type) as fuzz seeds.

The block layouts are ggml's (see engine/base/quant.h); the quantizers are this file's own: simple
max-abs / min-max scaling, not llama.cpp's search, so errors are a little larger than a real
llama.cpp quantization of the same weights.
"""

import argparse
import os
import struct
import sys

import numpy as np

# ---- GGUF -------------------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
          T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}

F32, F16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 8, 12, 13, 14, 30
# ggml type: (name, block elements, block bytes)
GGML = {F32: ("F32", 1, 4), F16: ("F16", 1, 2), BF16: ("BF16", 1, 2), Q8_0: ("Q8_0", 32, 34),
        Q4_0: ("Q4_0", 32, 18), Q4_K: ("Q4_K", 256, 144), Q5_K: ("Q5_K", 256, 176),
        Q6_K: ("Q6_K", 256, 210)}
BY_NAME = {v[0].lower(): k for k, v in GGML.items()}


class Reader:
    def __init__(self, buf):
        self.b = buf
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = bytes(self.b[self.p:self.p + n])
        self.p += n
        return s

    def value(self, t):
        if t == T_STR:
            return self.string()
        if t == T_ARR:
            et = self.take("<I")
            n = self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR[t])


def read_gguf(path):
    """(kvs, tensors, alignment): kvs a list of (key, type, value); tensors a list of dicts
    with name, ne (innermost first), type and the raw bytes."""
    buf = open(path, "rb").read()
    r = Reader(buf)
    if buf[:4] != GGUF_MAGIC:
        raise SystemExit(f"{path}: not a GGUF file")
    r.p = 4
    version = r.take("<I")
    if version not in (2, 3):
        raise SystemExit(f"{path}: GGUF version {version} not supported")
    n_tensors = r.take("<Q")
    n_kv = r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        k = r.string().decode()
        t = r.take("<I")
        kvs.append((k, t, r.value(t)))
    align = 32
    for k, t, v in kvs:
        if k == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name = r.string().decode()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        t = r.take("<I")
        off = r.take("<Q")
        infos.append((name, ne, t, off))
    data = (r.p + align - 1) // align * align
    tensors = []
    for name, ne, t, off in infos:
        _, blk, bb = GGML[t]
        n = int(np.prod(ne))
        nbytes = n // blk * bb
        tensors.append({"name": name, "ne": ne, "type": t,
                        "data": bytes(buf[data + off:data + off + nbytes])})
    return kvs, tensors, align


def write_value(out, t, v):
    if t == T_STR:
        out += struct.pack("<Q", len(v)) + v
    elif t == T_ARR:
        et, items = v
        out += struct.pack("<IQ", et, len(items))
        for it in items:
            write_value(out, et, it)
    else:
        out += struct.pack(SCALAR[t], v)


def write_gguf(path, kvs, tensors, align=32):
    out = bytearray(GGUF_MAGIC)
    out += struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        kb = k.encode()
        out += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", t)
        write_value(out, t, v)
    off = 0
    offs = []
    for t in tensors:
        nb = t["name"].encode()
        out += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(t["ne"]))
        out += b"".join(struct.pack("<Q", n) for n in t["ne"])
        out += struct.pack("<IQ", t["type"], off)
        offs.append(off)
        off = (off + len(t["data"]) + align - 1) // align * align
    out += b"\0" * ((align - len(out) % align) % align)
    base = len(out)
    for t, o in zip(tensors, offs):
        out += b"\0" * (base + o - len(out))
        out += t["data"]
    with open(path, "wb") as f:
        f.write(out)


# ---- dequantization (to check the quantizers and for the reference) ---------------------------

def f16(a):
    return np.frombuffer(a.tobytes(), dtype="<f2").astype(np.float32)


def dequantize(t):
    """float32 array of shape ne[::-1] (outermost first)."""
    typ, raw, shape = t["type"], t["data"], t["ne"][::-1]
    if typ == F32:
        x = np.frombuffer(raw, dtype="<f4")
    elif typ == F16:
        x = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif typ == BF16:
        x = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        _, blk, bb = GGML[typ]
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, bb)
        if typ == Q8_0:
            d = f16(b[:, 0:2])[:, None]
            x = b[:, 2:].view(np.int8).astype(np.float32) * d
        elif typ == Q4_0:
            d = f16(b[:, 0:2])[:, None]
            qs = b[:, 2:]
            q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
            x = q * d
        elif typ == Q4_K:
            d = f16(b[:, 0:2])[:, None]
            dmin = f16(b[:, 2:4])[:, None]
            sc, m = unpack_q4k_scales(b[:, 4:16])
            qs = b[:, 16:].reshape(-1, 4, 32)
            q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.float32)
            x = (d[:, :, None] * sc[:, :, None]) * q - (dmin[:, :, None] * m[:, :, None])
        elif typ == Q5_K:
            d = f16(b[:, 0:2])[:, None]
            dmin = f16(b[:, 2:4])[:, None]
            sc, m = unpack_q4k_scales(b[:, 4:16])
            qh = b[:, 16:48]
            qs = b[:, 48:].reshape(-1, 4, 32)
            q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.int32)
            hi = (qh[:, None, :] >> np.arange(8)[None, :, None]) & 1
            q = (q + 16 * hi).astype(np.float32)
            x = (d[:, :, None] * sc[:, :, None]) * q - (dmin[:, :, None] * m[:, :, None])
        elif typ == Q6_K:
            ql = b[:, 0:128].reshape(-1, 2, 64)
            qh = b[:, 128:192].reshape(-1, 2, 32)
            sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(-1, 16)
            d = f16(b[:, 208:210])[:, None]
            q = np.empty((b.shape[0], 2, 4, 32), dtype=np.int32)
            q[:, :, 0] = (ql[:, :, :32] & 15) | ((qh >> 0) & 3) << 4
            q[:, :, 1] = (ql[:, :, 32:] & 15) | ((qh >> 2) & 3) << 4
            q[:, :, 2] = (ql[:, :, :32] >> 4) | ((qh >> 4) & 3) << 4
            q[:, :, 3] = (ql[:, :, 32:] >> 4) | ((qh >> 6) & 3) << 4
            q = q.reshape(-1, 16, 16).astype(np.float32) - 32
            x = (d[:, :, None] * sc[:, :, None]) * q
        else:
            raise SystemExit(f"{t['name']}: type {typ} not supported")
    return np.asarray(x, dtype=np.float32).reshape(shape)


def unpack_q4k_scales(s):
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.float32)
    m = np.empty((s.shape[0], 8), dtype=np.float32)
    sc[:, :4] = s[:, 0:4] & 63
    m[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | (s[:, 0:4] >> 6) << 4
    m[:, 4:] = (s[:, 8:12] >> 4) | (s[:, 4:8] >> 6) << 4
    return sc, m


# ---- quantization -----------------------------------------------------------------------------

def to_f16(x):
    return np.asarray(x, dtype=np.float32).astype("<f2")


def round_away(x):
    """C roundf: halves away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quant_q8_0(x):
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    d = amax / 127
    inv = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0)
    q = np.clip(round_away(b * inv[:, None]), -127, 127).astype(np.int8)
    out = np.empty((b.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = to_f16(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quant_q4_0(x):
    b = x.reshape(-1, 32)
    # the element of largest magnitude, with its sign, maps to -8
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(b.shape[0]), idx]
    d = mx / -8
    d16 = to_f16(d)
    d = d16.astype(np.float32)
    inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0)
    q = np.clip(np.trunc(b * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    out = np.empty((b.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = d16.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def pack_q4k_scales(sc, m):
    sc = sc.astype(np.uint8)
    m = m.astype(np.uint8)
    s = np.empty((sc.shape[0], 12), dtype=np.uint8)
    s[:, 0:4] = (sc[:, :4] & 63) | ((sc[:, 4:] >> 4) << 6)
    s[:, 4:8] = (m[:, :4] & 63) | ((m[:, 4:] >> 4) << 6)
    s[:, 8:12] = (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4)
    return s


def quant_q4_k(x, levels=15):
    """x = d*sc*q - dmin*m per sub-block of 32, q in 0..levels, 6-bit sc and m."""
    b = x.reshape(-1, 8, 32).astype(np.float64)
    lo = np.minimum(b.min(axis=2), 0)          # sub-block minimum, as -min >= 0
    hi = b.max(axis=2)
    scale = (hi - lo) / levels
    mins = -lo
    d = scale.max(axis=1) / 63
    dmin = mins.max(axis=1) / 63
    d16, dmin16 = to_f16(d), to_f16(dmin)
    d, dmin = d16.astype(np.float64), dmin16.astype(np.float64)
    sc = np.clip(round_away(scale / np.where(d > 0, d, 1)[:, None]), 0, 63)
    m = np.clip(round_away(mins / np.where(dmin > 0, dmin, 1)[:, None]), 0, 63)
    # quants against the scales as they will be decoded
    ds = (d[:, None] * sc)[:, :, None]
    dm = (dmin[:, None] * m)[:, :, None]
    q = np.clip(round_away((b + dm) / np.where(ds > 0, ds, 1)), 0, levels).astype(np.uint8)
    q = np.where(ds > 0, q, 0).astype(np.uint8)
    return d16, dmin16, sc, m, q


def pack_q4_k(x):
    d16, dmin16, sc, m, q = quant_q4_k(x, 15)
    out = np.empty((q.shape[0], 144), dtype=np.uint8)
    out[:, 0:2] = d16.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin16.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = pack_q4k_scales(sc, m)
    qs = q.reshape(-1, 4, 2, 32)               # pairs of sub-blocks share 32 bytes
    out[:, 16:] = (qs[:, :, 0] | (qs[:, :, 1] << 4)).reshape(-1, 128)
    return out.tobytes()


def pack_q5_k(x):
    """As Q4_K with 5-bit quants: the fifth bit of sub-block j's value l is bit j of qh[l]."""
    d16, dmin16, sc, m, q = quant_q4_k(x, 31)
    out = np.empty((q.shape[0], 176), dtype=np.uint8)
    out[:, 0:2] = d16.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin16.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = pack_q4k_scales(sc, m)
    hi = (q >> 4).astype(np.uint8)             # (blocks, 8 sub-blocks, 32)
    out[:, 16:48] = (hi << np.arange(8, dtype=np.uint8)[None, :, None]).sum(axis=1,
                                                                             dtype=np.uint8)
    lo = (q & 15).reshape(-1, 4, 2, 32)
    out[:, 48:] = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(-1, 128)
    return out.tobytes()


def quant_q6_k(x):
    """x = d*scale[k]*(q-32) per sub-block of 16, q in 0..63, int8 scales."""
    b = x.reshape(-1, 16, 16).astype(np.float64)
    idx = np.abs(b).argmax(axis=2)
    mx = np.take_along_axis(b, idx[:, :, None], axis=2)[:, :, 0]
    scale = mx / -32                           # the largest magnitude maps to -32
    smax_i = np.abs(scale).argmax(axis=1)
    smax = scale[np.arange(b.shape[0]), smax_i]
    iscale = np.where(smax != 0, -128 / np.where(smax != 0, smax, 1), 0)
    sc = np.clip(round_away(scale * iscale[:, None]), -128, 127)
    d = np.where(iscale != 0, 1 / np.where(iscale != 0, iscale, 1), 0)
    d16 = to_f16(d)
    d = d16.astype(np.float64)
    ds = (d[:, None] * sc)[:, :, None]
    q = np.clip(round_away(b / np.where(ds != 0, ds, 1)) + 32, 0, 63)
    q = np.where(ds != 0, q, 32).astype(np.uint8).reshape(-1, 2, 4, 32)
    out = np.empty((b.shape[0], 210), dtype=np.uint8)
    ql = np.empty((b.shape[0], 2, 64), dtype=np.uint8)
    ql[:, :, :32] = (q[:, :, 0] & 15) | ((q[:, :, 2] & 15) << 4)
    ql[:, :, 32:] = (q[:, :, 1] & 15) | ((q[:, :, 3] & 15) << 4)
    qh = (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | \
        ((q[:, :, 3] >> 4) << 6)
    out[:, 0:128] = ql.reshape(-1, 128)
    out[:, 128:192] = qh.reshape(-1, 64)
    out[:, 192:208] = sc.astype(np.int8).view(np.uint8)
    out[:, 208:210] = d16.view(np.uint8).reshape(-1, 2)
    return out.tobytes()


QUANT = {Q8_0: quant_q8_0, Q4_0: quant_q4_0, Q4_K: pack_q4_k, Q5_K: pack_q5_k, Q6_K: quant_q6_k}

# --type mix: a mixture in the spirit of llama.cpp's Q4_K_M (which keeps attn_v and ffn_down at
# higher precision), with Q5_K for the other attention matrices and a Q8_0 embedding.
MIX = {"attn_q": Q5_K, "attn_k": Q5_K, "attn_output": Q5_K, "attn_v": Q6_K, "ffn_down": Q6_K,
       "ffn_gate": Q4_K, "ffn_up": Q4_K, "token_embd": Q8_0}


def quantize_tensor(t, typ):
    x = dequantize(t)
    _, blk, _ = GGML[typ]
    if t["ne"][0] % blk:
        typ = Q8_0
    return {"name": t["name"], "ne": t["ne"], "type": typ, "data": QUANT[typ](x.ravel())}


def cmd_quantize(a):
    kvs, tensors, align = read_gguf(a.input)
    typ = BY_NAME.get(a.type, Q4_K)
    out = []
    for t in tensors:
        if len(t["ne"]) < 2:
            out.append(t)
            continue
        tt = typ
        if a.type == "mix":
            tt = MIX[t["name"].split(".")[-2]]
        elif t["name"] in ("token_embd.weight", "output.weight"):
            tt = BY_NAME[a.embd_type] if a.embd_type else (Q6_K if t["ne"][0] % 256 == 0
                                                            else Q8_0)
        q = quantize_tensor(t, tt)
        err = np.abs(dequantize(q) - dequantize(t)).max()
        rel = err / max(np.abs(dequantize(t)).max(), 1e-30)
        print(f"{t['name']}: {GGML[q['type']][0]}, max abs error {err:.3g} "
              f"({rel:.3g} of max |w|)", file=sys.stderr)
        out.append(q)
    # llama.cpp's LLAMA_FTYPE numbers (mix: Q4_K_M)
    ftype = 15 if a.type == "mix" else {Q8_0: 7, Q4_0: 2, Q4_K: 15, Q5_K: 17, Q6_K: 18}[typ]
    kvs = [(k, t, ftype if k == "general.file_type" else v) for k, t, v in kvs]
    write_gguf(a.output, kvs, out, align)


# ---- a random Gemma 2 ---------------------------------------------------------------------------

def cmd_synth(a):
    rng = np.random.default_rng(a.seed)
    D, F, H, K, HD, V = a.d_model, a.ffn, a.heads, a.kv_heads, a.head_dim, a.vocab

    def mat(rows, cols, std=0.15):
        # bf16-exact values, like the tiny-a goldens
        w = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
        return (w.view(np.uint32) & 0xFFFF0000).view(np.float32)

    def norm():
        return (1 + rng.standard_normal(D) * 0.1).astype(np.float32)

    ts = [("token_embd.weight", mat(V, D, 0.5))]
    for l in range(a.layers):
        p = f"blk.{l}."
        ts += [(p + "attn_norm.weight", norm()), (p + "attn_q.weight", mat(H * HD, D)),
               (p + "attn_k.weight", mat(K * HD, D)), (p + "attn_v.weight", mat(K * HD, D)),
               (p + "attn_output.weight", mat(D, H * HD)),
               (p + "post_attention_norm.weight", norm()), (p + "ffn_norm.weight", norm()),
               (p + "ffn_gate.weight", mat(F, D)), (p + "ffn_up.weight", mat(F, D)),
               (p + "ffn_down.weight", mat(D, F)), (p + "post_ffw_norm.weight", norm())]
    ts.append(("output_norm.weight", norm()))
    tensors = [{"name": n, "ne": list(w.shape[::-1]), "type": F32,
                "data": w.astype("<f4").tobytes()} for n, w in ts]
    kvs = [("general.architecture", T_STR, b"gemma2"), ("general.name", T_STR, b"synth"),
           ("gemma2.context_length", T_U32, 8192), ("gemma2.embedding_length", T_U32, D),
           ("gemma2.block_count", T_U32, a.layers), ("gemma2.feed_forward_length", T_U32, F),
           ("gemma2.attention.head_count", T_U32, H),
           ("gemma2.attention.head_count_kv", T_U32, K),
           ("gemma2.attention.layer_norm_rms_epsilon", T_F32, 1e-6),
           ("gemma2.attention.key_length", T_U32, HD),
           ("gemma2.attention.value_length", T_U32, HD), ("general.file_type", T_U32, 0),
           ("gemma2.attn_logit_softcapping", T_F32, 50.0),
           ("gemma2.final_logit_softcapping", T_F32, 30.0),
           ("gemma2.attention.sliding_window", T_U32, a.window),
           ("tokenizer.ggml.bos_token_id", T_U32, 2), ("tokenizer.ggml.eos_token_id", T_U32, 1)]
    write_gguf(a.output, kvs, tensors)


# ---- the float64 reference ----------------------------------------------------------------------

def cmd_ref(a):
    kvs, tensors, _ = read_gguf(a.model)
    kv = {k: v for k, _, v in kvs}
    arch = kv["general.architecture"].decode()
    W = {t["name"]: dequantize(t).astype(np.float64) for t in tensors}
    D = kv[f"{arch}.embedding_length"]
    L = kv[f"{arch}.block_count"]
    H = kv[f"{arch}.attention.head_count"]
    K = kv.get(f"{arch}.attention.head_count_kv", H)
    HD = kv.get(f"{arch}.attention.key_length", D // H)
    eps = kv[f"{arch}.attention.layer_norm_rms_epsilon"]
    win = kv.get(f"{arch}.attention.sliding_window", 4096)
    acap = kv.get(f"{arch}.attn_logit_softcapping", 50.0)
    fcap = kv.get(f"{arch}.final_logit_softcapping", 30.0)
    theta = kv.get(f"{arch}.rope.freq_base", 10000.0)
    scale = 1 / np.sqrt(D // H if L == 46 else HD)
    ids = [int(x) for x in a.tokens.split(",")]
    T = len(ids)

    def rms(x, g):  # g is stored as 1 + w
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * g

    def rope(x):  # (T, n, HD), NeoX halves
        half = HD // 2
        inv = theta ** (-np.arange(half) * 2.0 / HD)
        ang = np.arange(T)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    E = W["token_embd.weight"]
    x = E[ids] * np.sqrt(D)
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(T, H, HD))
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(T, K, HD))
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, K, HD)
        mask = j <= i
        if l % 2 == 0:
            mask = mask & (i - j < win)
        o = np.empty((T, H, HD))
        for n in range(H):
            kn = n // (H // K)
            s = q[:, n] @ k[:, kn].T * scale
            if acap:
                s = acap * np.tanh(s / acap)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            o[:, n] = s @ v[:, kn]
        x = x + rms(o.reshape(T, H * HD) @ W[p + "attn_output.weight"].T,
                    W[p + "post_attention_norm.weight"])
        h = rms(x, W[p + "ffn_norm.weight"])
        m = (gelu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)) @ \
            W[p + "ffn_down.weight"].T
        x = x + rms(m, W[p + "post_ffw_norm.weight"])
    z = rms(x, W["output_norm.weight"]) @ E.T
    if fcap:
        z = fcap * np.tanh(z / fcap)
    rows = range(T) if a.all else [T - 1]
    out = [f"n_tokens {T}", "tokens " + " ".join(map(str, ids)), f"n_vocab {E.shape[0]}"]
    for r in rows:
        out.append(f"logits {r}")
        out += [f"{v:.8g}" for v in z[r]]
    sys.stdout.write("\n".join(out) + "\n")


# ---- fuzz seeds -----------------------------------------------------------------------------------

def cmd_seeds(a):
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(1)
    base = [("general.architecture", T_STR, b"gemma2"),
            ("general.alignment", T_U32, 32),
            ("gemma2.context_length", T_U32, 64), ("gemma2.embedding_length", T_U32, 256),
            ("gemma2.block_count", T_U32, 1), ("gemma2.feed_forward_length", T_U32, 256),
            ("gemma2.attention.head_count", T_U32, 2),
            ("gemma2.attention.head_count_kv", T_U32, 1),
            ("gemma2.attention.layer_norm_rms_epsilon", T_F32, 1e-6),
            ("gemma2.attention.sliding_window", T_U32, 4),
            ("gemma2.rope.freq_base", T_F64, 10000.0),
            ("tokenizer.ggml.tokens", T_ARR, (T_STR, [b"<pad>", b"<eos>", b"<bos>", b"a"])),
            ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0, 0.0, 0.0, -1.5])),
            ("tokenizer.ggml.token_type", T_ARR, (T_I32, [3, 3, 3, 1])),
            ("tokenizer.ggml.add_bos_token", T_BOOL, True),
            ("x.u8", T_U8, 7), ("x.i8", T_I8, -7), ("x.u16", T_U16, 700), ("x.i16", T_I16, -700),
            ("x.u64", T_U64, 1 << 40), ("x.i64", T_I64, -(1 << 40)),
            ("x.arr_u16", T_ARR, (T_U16, [1, 2, 3]))]

    def t(name, ne, typ):
        x = rng.standard_normal(int(np.prod(ne))).astype(np.float32)
        src = {"name": name, "ne": ne, "type": F32, "data": x.tobytes()}
        if typ == F32:
            return src
        if typ in (F16, BF16):
            raw = x.astype("<f2").tobytes() if typ == F16 else \
                (x.view(np.uint32) >> 16).astype("<u2").tobytes()
            return {"name": name, "ne": ne, "type": typ, "data": raw}
        return quantize_tensor(src, typ)

    for typ in (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K):
        ts = [t("token_embd.weight", [256, 4], typ), t("blk.0.attn_q.weight", [256, 2], typ),
              t("output_norm.weight", [256], F32)]
        write_gguf(os.path.join(a.dir, f"model-{GGML[typ][0].lower()}.gguf"), base, ts)
    write_gguf(os.path.join(a.dir, "meta-only.gguf"), base, [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("--type", required=True,
                   choices=["q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "mix"])
    q.add_argument("--embd-type", choices=["q8_0", "q4_0", "q4_k", "q5_k", "q6_k"])
    s = sub.add_parser("synth")
    s.add_argument("output")
    for k, v in (("seed", 1), ("vocab", 256), ("d-model", 256), ("layers", 2), ("heads", 2),
                 ("kv-heads", 1), ("head-dim", 128), ("ffn", 256), ("window", 4)):
        s.add_argument("--" + k, type=int, default=v)
    r = sub.add_parser("ref")
    r.add_argument("model")
    r.add_argument("--tokens", required=True)
    r.add_argument("--all", action="store_true")
    sd = sub.add_parser("seeds")
    sd.add_argument("dir")
    a = ap.parse_args()
    {"quantize": cmd_quantize, "synth": cmd_synth, "ref": cmd_ref, "seeds": cmd_seeds}[a.cmd](a)


if __name__ == "__main__":
    main()
