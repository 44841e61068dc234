"""Tiny random Gemma 3 models for the tests, written the way the published files are laid out.

    hf(folder, spec, dtype="f32"|"bf16", layout="text"|"mm-new"|"mm-old")
        A Hugging Face folder: config.json + model.safetensors. "text": Gemma3ForCausalLM
        (model_type gemma3_text, tensors model.*). "mm-new" / "mm-old": the multimodal
        Gemma3ForConditionalGeneration (model_type gemma3, the language model's keys in
        text_config, its tensors under model.language_model.* (transformers >= 4.52) or
        language_model.model.* (the first published layout)), with a small vision tower and
        projector that the engine must ignore.
    gguf(path, spec, dtype="f32"|"bf16")
        The same weights as llama.cpp's converter writes them: arch "gemma3", blk.N.* names,
        norm weights stored as 1 + w (F32), the linear RoPE factor in gemma3.rope.scaling.*,
        query_pre_attn_scalar as gemma3.attention.scale.

Weights are bf16-exact, so the F32 and BF16 files of a spec hold the same values (one float64
reference serves both). `spec` is a dict of Gemma3TextConfig keys; the keys in spec["omit"] are
left out of config.json, so that their documented defaults are what the model runs with.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import gguf_quantize as gq  # noqa: E402  (the GGUF writer of the tests)

# A 5:1 pattern over 8 layers (0-4 sliding, 5 full, 6-7 sliding), window 5 (shorter than the
# prompts), GQA 4/2, head_dim 16 with query_pre_attn_scalar 24, two RoPE bases, linear factor 4.
BASE = {
    "vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 8,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0},
    "query_pre_attn_scalar": 24, "sliding_window": 5, "sliding_window_pattern": 6,
    "final_logit_softcapping": None, "attn_logit_softcapping": None,
}


def _bf16_exact(a):
    a = a.astype(np.float32)
    return (a.view(np.uint32) & 0xFFFF0000).view(np.float32)


def weights(spec, seed=1):
    """{HF name under model.: float32 array}"""
    rng = np.random.default_rng(seed)
    D, F, L = spec["hidden_size"], spec["intermediate_size"], spec["num_hidden_layers"]
    H, K, HD, V = (spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"],
                   spec["vocab_size"])

    def mat(rows, cols):
        return _bf16_exact(rng.standard_normal((rows, cols)) / np.sqrt(cols))

    def norm(n):
        return _bf16_exact(rng.standard_normal(n) * 0.3)

    w = {"embed_tokens.weight": _bf16_exact(rng.standard_normal((V, D)) / np.sqrt(D))}
    for l in range(L):
        p = "layers.%d." % l
        w.update({
            p + "input_layernorm.weight": norm(D),
            p + "self_attn.q_proj.weight": mat(H * HD, D),
            p + "self_attn.k_proj.weight": mat(K * HD, D),
            p + "self_attn.v_proj.weight": mat(K * HD, D),
            p + "self_attn.o_proj.weight": mat(D, H * HD),
            p + "self_attn.q_norm.weight": norm(HD),
            p + "self_attn.k_norm.weight": norm(HD),
            p + "post_attention_layernorm.weight": norm(D),
            p + "pre_feedforward_layernorm.weight": norm(D),
            p + "mlp.gate_proj.weight": mat(F, D),
            p + "mlp.up_proj.weight": mat(F, D),
            p + "mlp.down_proj.weight": mat(D, F),
            p + "post_feedforward_layernorm.weight": norm(D),
        })
    w["norm.weight"] = norm(D)
    return w


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        if dtype == "bf16":
            raw = (a.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            dt = "BF16"
        else:
            raw = a.astype("<f4").tobytes()
            dt = "F32"
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def config(spec, multimodal):
    text = {k: v for k, v in spec.items() if k not in spec.get("omit", ()) and k != "omit"}
    text["model_type"] = "gemma3_text"
    if not multimodal:
        return dict(text, architectures=["Gemma3ForCausalLM"], hidden_activation="gelu_pytorch_tanh",
                    bos_token_id=2, eos_token_id=[1, 106], tie_word_embeddings=True)
    return {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "text_config": text, "boi_token_index": 255999, "eoi_token_index": 256000,
            "image_token_index": 262144, "mm_tokens_per_image": 256,
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 8,
                              "image_size": 16, "patch_size": 4, "num_hidden_layers": 1},
            "eos_token_id": [1, 106]}


def hf(folder, spec, dtype="f32", layout="text", seed=1):
    os.makedirs(folder, exist_ok=True)
    w = weights(spec, seed)
    if layout == "text":
        tensors = {"model." + k: v for k, v in w.items()}
    else:
        pre = "model.language_model." if layout == "mm-new" else "language_model.model."
        vis = "model.vision_tower.vision_model." if layout == "mm-new" else "vision_tower.vision_model."
        proj = "model.multi_modal_projector." if layout == "mm-new" else "multi_modal_projector."
        rng = np.random.default_rng(99)
        tensors = {vis + "embeddings.patch_embedding.weight": rng.standard_normal((8, 3, 4, 4)),
                   vis + "post_layernorm.weight": rng.standard_normal(8),
                   proj + "mm_input_projection_weight": rng.standard_normal((8, spec["hidden_size"]))}
        tensors.update({pre + k: v for k, v in w.items()})
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config(spec, layout != "text"), f, indent=1)
    return folder


GGUF_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def gguf(path, spec, dtype="f32", seed=1):
    w = weights(spec, seed)
    tensors = []
    for name, a in w.items():
        if name == "embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "norm.weight":
            g = "output_norm.weight"
        else:
            _, l, rest = name.split(".", 2)
            g = "blk.%s.%s.weight" % (l, GGUF_NAMES[rest[:-len(".weight")]])
        if a.ndim == 1:  # norms: 1 + w, in F32 (llama.cpp's converter)
            tensors.append({"name": g, "ne": [a.shape[0]], "type": gq.F32,
                            "data": (a + 1).astype("<f4").tobytes()})
        elif dtype == "bf16":
            raw = (a.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            tensors.append({"name": g, "ne": list(a.shape[::-1]), "type": gq.BF16, "data": raw})
        else:
            tensors.append({"name": g, "ne": list(a.shape[::-1]), "type": gq.F32,
                            "data": a.astype("<f4").tobytes()})
    s = spec
    kvs = [("general.architecture", gq.T_STR, b"gemma3"), ("general.name", gq.T_STR, b"tiny-g3"),
           ("gemma3.context_length", gq.T_U32, s["max_position_embeddings"]),
           ("gemma3.embedding_length", gq.T_U32, s["hidden_size"]),
           ("gemma3.block_count", gq.T_U32, s["num_hidden_layers"]),
           ("gemma3.feed_forward_length", gq.T_U32, s["intermediate_size"]),
           ("gemma3.attention.head_count", gq.T_U32, s["num_attention_heads"]),
           ("gemma3.attention.head_count_kv", gq.T_U32, s["num_key_value_heads"]),
           ("gemma3.attention.key_length", gq.T_U32, s["head_dim"]),
           ("gemma3.attention.value_length", gq.T_U32, s["head_dim"]),
           ("gemma3.attention.layer_norm_rms_epsilon", gq.T_F32, s["rms_norm_eps"]),
           ("gemma3.attention.sliding_window", gq.T_U32, s["sliding_window"]),
           ("gemma3.rope.freq_base", gq.T_F32, s["rope_theta"]),
           ("gemma3.attention.scale", gq.T_F32, float(s["query_pre_attn_scalar"]) ** -0.5),
           ("general.file_type", gq.T_U32, 32 if dtype == "bf16" else 0)]
    rs = s.get("rope_scaling")
    if rs:
        kvs += [("gemma3.rope.scaling.type", gq.T_STR, b"linear"),
                ("gemma3.rope.scaling.factor", gq.T_F32, float(rs["factor"]))]
    gq.write_gguf(path, kvs, tensors)
    return path
