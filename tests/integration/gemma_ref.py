"""A float64 Gemma 2 / Gemma 3 forward pass in numpy, for tests only (shares no code with the
engine).

It reads a Hugging Face folder (config.json + model.safetensors, F32/BF16/F16) and follows
Hugging Face `Gemma2ForCausalLM` with eager attention (docs/ENGINE.md, "Numerics contract"):
embedding times sqrt(hidden), four RMSNorms per layer with (1 + w), GQA, NeoX RoPE, query_pre_attn_scalar,
attention soft-cap before the causal / sliding-window mask, gelu_tanh MLP, final norm, tied LM
head, final soft-cap.

Gemma 3 (`model_type` "gemma3_text", or "gemma3" with the language model's keys in
`text_config` and its tensors under `model.language_model.` / `language_model.model.`) follows
transformers' modeling_gemma3.py / configuration_gemma3.py: the Gemma3TextConfig defaults for
absent keys, `layer_types` (else "sliding_attention" unless (i + 1) % sliding_window_pattern ==
0), q_norm / k_norm (Gemma3RMSNorm over head_dim, (1 + w)) on each head before RoPE, sliding
layers rotated with rope_local_base_freq, full layers with rope_theta whose inverse frequencies
a "linear" rope_scaling divides by its factor, no soft-caps unless the config gives them.

    m = GemmaRef("path/to/model")
    z = m.logits(ids, want=[3553, 1294])   # final logits at the last position, float64
"""
import json
import math
import os
import struct

import numpy as np


def _read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = np.asarray(data[base + a:base + b])
        shape = tuple(t["shape"])
        dt = t["dtype"]
        if dt == "F32":
            arr = raw.view("<f4").astype(np.float64)
        elif dt == "F16":
            arr = raw.view("<f2").astype(np.float64)
        elif dt == "BF16":
            u = raw.view("<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        else:
            raise ValueError("%s: dtype %s not supported by the reference" % (name, dt))
        out[name] = arr.reshape(shape)
    return out


# Gemma3TextConfig's defaults (configuration_gemma3.py).
GEMMA3_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "query_pre_attn_scalar": 256,
    "sliding_window": 4096, "rope_local_base_freq": 10000.0, "sliding_window_pattern": 6,
    "final_logit_softcapping": None, "attn_logit_softcapping": None, "rope_scaling": None,
}


def _linear_factor(rs):
    if not rs:
        return 1.0
    t = rs.get("rope_type", rs.get("type"))
    if t == "default":
        return 1.0
    if t != "linear":
        raise ValueError("rope_scaling %r not supported by the reference" % t)
    return float(rs["factor"])


class GemmaRef:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            top = json.load(f)
        self.w = _read_safetensors(os.path.join(folder, "model.safetensors"))
        gemma3 = top["model_type"] in ("gemma3", "gemma3_text")
        c = top.get("text_config", top) if top["model_type"] == "gemma3" else top
        if gemma3:
            c = dict(GEMMA3_DEFAULTS, **c)
            self._rename_multimodal()
        self.c = c
        self.gemma3 = gemma3
        self.d = c["hidden_size"]
        self.n_layer = c["num_hidden_layers"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c["num_key_value_heads"]
        self.hd = c.get("head_dim", self.d // self.n_head)
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.scale = c.get("query_pre_attn_scalar", self.hd) ** -0.5
        self.attn_cap = c.get("attn_logit_softcapping") or 0.0
        self.final_cap = c.get("final_logit_softcapping") or 0.0
        self.window = c.get("sliding_window", 4096)
        if gemma3:
            pat = c["sliding_window_pattern"]
            self.sliding = [t == "sliding_attention" for t in c["layer_types"]] \
                if c.get("layer_types") else [bool((i + 1) % pat) for i in range(self.n_layer)]
            # (base, linear factor) of full and sliding layers
            self.rope_kind = {False: (self.theta, _linear_factor(c.get("rope_scaling"))),
                              True: (c["rope_local_base_freq"], 1.0)}
            # transformers 5 writes RoPE per layer type: rope_parameters[type] = {rope_type,
            # rope_theta, factor}
            rp = c.get("rope_parameters") or {}
            for kind, name in ((False, "full_attention"), (True, "sliding_attention")):
                if name in rp:
                    e = rp[name]
                    self.rope_kind[kind] = (e.get("rope_theta", self.rope_kind[kind][0]),
                                            _linear_factor(e))
        else:
            self.sliding = [l % 2 == 0 for l in range(self.n_layer)]
            f = _linear_factor(c.get("rope_scaling"))
            self.rope_kind = {False: (self.theta, f), True: (self.theta, f)}

    def _rename_multimodal(self):
        """Gemma3ForConditionalGeneration: keep the language model, under model.*."""
        for pre in ("model.language_model.", "language_model.model."):
            if pre + "embed_tokens.weight" in self.w:
                self.w = {"model." + k[len(pre):]: v for k, v in self.w.items()
                          if k.startswith(pre)}
                return

    def _norm(self, x, name):
        w = self.w[name]
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * (1.0 + w)

    def _rope(self, x, pos, sliding=False):
        # x: (T, H, hd); NeoX half split; linear scaling divides the inverse frequencies
        base, factor = self.rope_kind[sliding]
        half = self.hd // 2
        inv = 1.0 / (base ** (np.arange(0, half, dtype=np.float64) * 2.0 / self.hd)) / factor
        ang = np.outer(pos.astype(np.float64), inv)  # (T, half)
        cos = np.cos(ang)[:, None, :]
        sin = np.sin(ang)[:, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def hidden(self, ids):
        """Final-normed hidden states, (T, d)."""
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        w = self.w
        x = w["model.embed_tokens.weight"][ids] * math.sqrt(self.d)
        pos = np.arange(T)
        rep = self.n_head // self.n_kv
        i = pos[:, None]
        j = pos[None, :]
        causal = j <= i
        sliding = causal & ((i - j) < self.window)
        for l in range(self.n_layer):
            p = "model.layers.%d." % l
            h = self._norm(x, p + "input_layernorm.weight")
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, self.n_head, self.hd)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, self.n_kv, self.hd)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, self.n_kv, self.hd)
            if self.gemma3:
                q = self._norm(q, p + "self_attn.q_norm.weight")
                k = self._norm(k, p + "self_attn.k_norm.weight")
            q = self._rope(q, pos, self.sliding[l])
            k = self._rope(k, pos, self.sliding[l])
            mask = sliding if self.sliding[l] else causal
            out = np.empty((T, self.n_head, self.hd))
            for hh in range(self.n_head):
                kv = hh // rep
                s = (q[:, hh, :] @ k[:, kv, :].T) * self.scale
                if self.attn_cap:
                    s = self.attn_cap * np.tanh(s / self.attn_cap)
                s = np.where(mask, s, -np.inf)
                s = s - s.max(axis=1, keepdims=True)
                e = np.exp(s)
                a = e / e.sum(axis=1, keepdims=True)
                out[:, hh, :] = a @ v[:, kv, :]
            o = out.reshape(T, self.n_head * self.hd) @ w[p + "self_attn.o_proj.weight"].T
            x = x + self._norm(o, p + "post_attention_layernorm.weight")
            h = self._norm(x, p + "pre_feedforward_layernorm.weight")
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            g = 0.5 * g * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
            m = (g * u) @ w[p + "mlp.down_proj.weight"].T
            x = x + self._norm(m, p + "post_feedforward_layernorm.weight")
        return self._norm(x, "model.norm.weight")

    def logits(self, ids, want=None, all_positions=False):
        """Final (soft-capped) logits at the last position (or every one) for the vocabulary ids
        in `want` (None: all)."""
        h = self.hidden(ids)
        if not all_positions:
            h = h[-1:]
        E = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        rows = E if want is None else E[np.asarray(want)]
        z = h @ rows.T
        if self.final_cap:
            z = self.final_cap * np.tanh(z / self.final_cap)
        return z if all_positions else z[0]


def p_violation(z_yes, z_no, T=1.0, a=0.0):
    """(exp(zYes/T) + a) / (exp(zYes/T) + exp(zNo/T) + 2a), float64."""
    ey = math.exp(z_yes / T)
    en = math.exp(z_no / T)
    return (ey + a) / (ey + en + 2.0 * a)
