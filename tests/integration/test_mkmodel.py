"""build/tools/mkmodel: deterministic random Gemma 2 and Gemma 3 models as Hugging Face
folders, and Gemma 2 as GGUF."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

from clients_common import MKMODEL, SHIELDCTL, TOKENIZER

GGUF_F32, GGUF_BF16 = 0, 30
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}


def read_gguf(path):
    """(metadata dict, {name: {ne, type, data}}) of a GGUF v3 file with F32/BF16 tensors."""
    blob = open(path, "rb").read()
    pos = [4]

    def take(fmt):
        v = struct.unpack_from(fmt, blob, pos[0])[0]
        pos[0] += struct.calcsize(fmt)
        return v

    def string():
        n = take("<Q")
        pos[0] += n
        return blob[pos[0] - n:pos[0]]

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(_SCALARS[t])

    assert blob[:4] == b"GGUF" and take("<I") == 3
    n_t, n_kv = take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = string().decode()
        kv[k] = value(take("<I"))
        if isinstance(kv[k], bytes) and not k.startswith("tokenizer.ggml.tokens"):
            kv[k] = kv[k].decode()
    infos = []
    for _ in range(n_t):
        name = string().decode()
        ne = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, ne, take("<I"), take("<Q")))
    base = (pos[0] + 31) // 32 * 32
    tensors = {}
    for name, ne, t, off in infos:
        n = 1
        for d in ne:
            n *= d
        size = n * (2 if t == GGUF_BF16 else 4)
        tensors[name] = {"ne": ne, "type": t, "data": blob[base + off:base + off + size]}
    return kv, tensors


def read_safetensors(path):
    """Return (header dict, data bytes) of a safetensors file, checking its framing."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    return header, blob[8 + n:]


def f32_to_bf16_bits(x_bits):
    """Round-to-nearest-even of float32 bits to bfloat16 bits (no NaNs here)."""
    return ((x_bits + 0x7FFF + ((x_bits >> 16) & 1)) >> 16) & 0xFFFF


class MkmodelTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sg-mkmodel-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_mkmodel(self, out, *args, ok=True):
        p = subprocess.run([MKMODEL, "--out", os.path.join(self.tmp, out), "--quiet"] + list(args),
                           capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, p.stderr)
        else:
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("mkmodel:", p.stderr)
        return p

    def test_tiny_layout_and_config(self):
        self.run_mkmodel("t", "--preset", "tiny", "--no-tokenizer", "--vocab", "300",
                         "--dtype", "f32", "--layers", "3")
        d = os.path.join(self.tmp, "t")
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.assertEqual(cfg["model_type"], "gemma2")
        self.assertEqual((cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"],
                          cfg["num_attention_heads"], cfg["num_key_value_heads"],
                          cfg["head_dim"], cfg["intermediate_size"], cfg["sliding_window"]),
                         (300, 64, 3, 4, 2, 16, 128, 8))
        self.assertEqual(cfg["layer_types"],
                         ["sliding_attention", "full_attention", "sliding_attention"])
        self.assertEqual(cfg["torch_dtype"], "float32")
        self.assertFalse(os.path.exists(os.path.join(d, "tokenizer.json")))
        header, data = read_safetensors(os.path.join(d, "model.safetensors"))
        header.pop("__metadata__", None)
        self.assertEqual(len(header), 1 + 3 * 11 + 1)
        want = {
            "model.embed_tokens.weight": [300, 64],
            "model.layers.2.self_attn.q_proj.weight": [64, 64],
            "model.layers.2.self_attn.k_proj.weight": [32, 64],
            "model.layers.0.self_attn.o_proj.weight": [64, 64],
            "model.layers.1.mlp.gate_proj.weight": [128, 64],
            "model.layers.1.mlp.down_proj.weight": [64, 128],
            "model.layers.1.post_feedforward_layernorm.weight": [64],
            "model.norm.weight": [64],
        }
        for name, shape in want.items():
            self.assertEqual(header[name]["shape"], shape, name)
            self.assertEqual(header[name]["dtype"], "F32", name)
        # Offsets tile the data section exactly.
        spans = sorted(tuple(e["data_offsets"]) for e in header.values())
        self.assertEqual(spans[0][0], 0)
        for a, b in zip(spans, spans[1:]):
            self.assertEqual(a[1], b[0])
        self.assertEqual(spans[-1][1], len(data))
        # Scales: embedding std ~ 1/sqrt(64), norms around 0, everything bounded.
        a, b = header["model.embed_tokens.weight"]["data_offsets"]
        vals = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
        mean = sum(vals) / len(vals)
        std = (sum(v * v for v in vals) / len(vals) - mean * mean) ** 0.5
        self.assertLess(abs(mean), 0.01)
        self.assertAlmostEqual(std, 0.125, delta=0.01)
        self.assertLess(max(abs(v) for v in vals), 0.125 * 3.5)

    def test_deterministic_and_bf16_is_rounded_f32(self):
        common = ["--preset", "tiny", "--no-tokenizer", "--vocab", "256"]
        self.run_mkmodel("a", *common, "--seed", "7")
        self.run_mkmodel("b", *common, "--seed", "7")
        self.run_mkmodel("c", *common, "--seed", "8")
        self.run_mkmodel("f", *common, "--seed", "7", "--dtype", "f32")
        blob = {k: open(os.path.join(self.tmp, k, "model.safetensors"), "rb").read()
                for k in "abcf"}
        self.assertEqual(blob["a"], blob["b"])
        self.assertNotEqual(blob["a"], blob["c"])
        hb, db = read_safetensors(os.path.join(self.tmp, "a", "model.safetensors"))
        hf, df = read_safetensors(os.path.join(self.tmp, "f", "model.safetensors"))
        name = "model.layers.1.self_attn.v_proj.weight"
        self.assertEqual(hb[name]["dtype"], "BF16")
        a, b = hf[name]["data_offsets"]
        f32 = struct.unpack("<%dI" % ((b - a) // 4), df[a:b])
        a, b = hb[name]["data_offsets"]
        bf = struct.unpack("<%dH" % ((b - a) // 2), db[a:b])
        self.assertEqual(list(bf), [f32_to_bf16_bits(x) for x in f32])

    @unittest.skipUnless(os.path.exists(TOKENIZER), "Gemma tokenizer not installed")
    def test_real_tokenizer_sets_vocab(self):
        self.run_mkmodel("g", "--preset", "tiny", "--hidden", "8", "--heads", "2",
                         "--kv-heads", "1", "--head-dim", "4", "--ffn", "8", "--layers", "1")
        d = os.path.join(self.tmp, "g")
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.assertEqual(cfg["vocab_size"], 256000)
        self.assertEqual(cfg["query_pre_attn_scalar"], 4)
        self.assertEqual(os.path.getsize(os.path.join(d, "tokenizer.json")),
                         os.path.getsize(TOKENIZER))
        header, _ = read_safetensors(os.path.join(d, "model.safetensors"))
        self.assertEqual(header["model.embed_tokens.weight"]["shape"], [256000, 8])

    def shieldctl(self, *args):
        p = subprocess.run([SHIELDCTL] + list(args), capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_gguf_same_model_as_the_folder(self):
        g = os.path.join(self.tmp, "m.gguf")
        self.run_mkmodel("m", "--preset", "tiny", "--no-tokenizer", "--vocab", "300", "--seed", "3",
                         "--gguf", g)
        kv, by = read_gguf(g)
        self.assertEqual(kv["general.architecture"], "gemma2")
        self.assertEqual((kv["gemma2.embedding_length"], kv["gemma2.block_count"],
                          kv["gemma2.feed_forward_length"], kv["gemma2.attention.head_count"],
                          kv["gemma2.attention.head_count_kv"], kv["gemma2.attention.key_length"],
                          kv["gemma2.attention.sliding_window"]), (64, 2, 128, 4, 2, 16, 8))
        self.assertNotIn("tokenizer.ggml.tokens", kv)
        self.assertEqual(len(by), 1 + 2 * 11 + 1)
        self.assertEqual(by["token_embd.weight"]["ne"], [64, 300])
        self.assertEqual(by["token_embd.weight"]["type"], GGUF_BF16)
        self.assertEqual(by["blk.1.ffn_down.weight"]["ne"], [128, 64])
        self.assertEqual(by["blk.0.post_ffw_norm.weight"]["type"], GGUF_F32)
        # Matrices: the folder's BF16 bytes; norms: 1 + the folder's bf16 value, in f32.
        header, data = read_safetensors(os.path.join(self.tmp, "m", "model.safetensors"))
        a, b = header["model.layers.1.mlp.up_proj.weight"]["data_offsets"]
        self.assertEqual(by["blk.1.ffn_up.weight"]["data"], data[a:b])
        a, b = header["model.layers.0.input_layernorm.weight"]["data_offsets"]
        w = struct.unpack("<64H", data[a:b])
        norm = struct.unpack("<64f", by["blk.0.attn_norm.weight"]["data"])
        for h, v in zip(w, norm):
            self.assertEqual(v, struct.unpack("<f", struct.pack("<f", 1.0 + struct.unpack(
                "<f", struct.pack("<I", h << 16))[0]))[0])
        # The engine computes the same logits from both files, bit for bit.
        ids = "2,17,254,3,99,180,5,64"
        self.assertEqual(self.shieldctl("logits", "--model", g, "--ids", ids, "--all-positions"),
                         self.shieldctl("logits", "--model", os.path.join(self.tmp, "m"),
                                        "--ids", ids, "--all-positions"))

    @unittest.skipUnless(os.path.exists(TOKENIZER), "Gemma tokenizer not installed")
    def test_gguf_vocabulary(self):
        g = os.path.join(self.tmp, "v.gguf")
        self.run_mkmodel("v", "--preset", "tiny", "--hidden", "8", "--heads", "2", "--kv-heads",
                         "1", "--head-dim", "4", "--ffn", "8", "--layers", "1", "--gguf", g)
        kv, _ = read_gguf(g)
        toks, types, scores = (kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"],
                               kv["tokenizer.ggml.scores"])
        self.assertEqual(kv["tokenizer.ggml.model"], "llama")
        self.assertEqual(len(toks), 256000)
        self.assertEqual((len(types), len(scores)), (256000, 256000))
        self.assertEqual([toks[i] for i in (0, 1, 2, 3, 106, 107)],
                         [b"<pad>", b"<eos>", b"<bos>", b"<unk>", b"<start_of_turn>",
                          b"<end_of_turn>"])
        self.assertEqual([types[i] for i in (0, 1, 2, 3, 106, 107, 7)], [3, 3, 3, 2, 3, 3, 3])
        self.assertEqual(types[108], 4)  # "\n": an added token that is not special
        self.assertEqual(toks[139], b"  ")  # user-defined pieces keep ' ', not U+2581
        byte_a = toks.index(b"<0x41>")
        self.assertEqual(types[byte_a], 6)
        # The first merge makes the highest-scoring merged piece.
        vocab = json.load(open(TOKENIZER))["model"]
        first = vocab["merges"][0]
        first = first.replace(" ", "") if isinstance(first, str) else "".join(first)
        self.assertEqual(scores[vocab["vocab"][first]], 0.0)
        self.assertLess(scores[vocab["vocab"]["▁the"]], 0.0)
        # Both tokenizers give the same ids (text without runs of spaces or literal
        # <mask>/<unusedN>, where llama.cpp's conventions differ from Hugging Face's).
        folder = os.path.join(self.tmp, "v")
        for text in ["Hello world, this is a test.", "ünïcödé 日本語 🙂 tabs\there\nnew\n\nlines",
                     "<start_of_turn>user\nYou are a policy expert<end_of_turn>\n",
                     "Numbers 1234567 and emails a.b@c.de; x = y * 2;"]:
            self.assertEqual(self.shieldctl("tokenize", "--model", g, "--special", text),
                             self.shieldctl("tokenize", "--model", folder, "--special", text),
                             text)

    def test_gemma3_presets(self):
        """The real Gemma 3 shapes (published config.json files), and a reduced 27B that the
        engine runs equal to the float64 reference."""
        real = {"gemma3-1b": (1152, 6912, 26, 4, 1, 256, 512, 256, None),
                "gemma3-4b": (2560, 10240, 34, 8, 4, 256, 1024, 256, 8),
                "gemma3-12b": (3840, 15360, 48, 16, 8, 256, 1024, 256, 8),
                "gemma3-27b": (5376, 21504, 62, 32, 16, 128, 1024, 168, 8)}
        for preset, (d, ff, layers, heads, kv, hd, window, qpas, factor) in real.items():
            # one layer, so that the folder stays small: the rest of the config is the preset's
            self.run_mkmodel(preset, "--preset", preset, "--no-tokenizer", "--vocab", "64",
                             "--layers", "1", "--hidden", str(d // 64), "--ffn", "8")
            cfg = json.load(open(os.path.join(self.tmp, preset, "config.json")))
            self.assertEqual(cfg["model_type"], "gemma3_text")
            self.assertEqual(cfg["architectures"], ["Gemma3ForCausalLM"])
            self.assertEqual((cfg["num_attention_heads"], cfg["num_key_value_heads"],
                              cfg["head_dim"], cfg["sliding_window"],
                              cfg["query_pre_attn_scalar"], cfg["sliding_window_pattern"],
                              cfg["rope_theta"], cfg["rope_local_base_freq"]),
                             (heads, kv, hd, window, qpas, 6, 1000000, 10000), preset)
            self.assertEqual(cfg["rope_scaling"],
                             {"factor": factor, "rope_type": "linear"} if factor else None)
            self.assertIsNone(cfg["attn_logit_softcapping"])
            self.assertIsNone(cfg["final_logit_softcapping"])
            header, _ = read_safetensors(os.path.join(self.tmp, preset, "model.safetensors"))
            self.assertEqual(header["model.layers.0.self_attn.q_norm.weight"]["shape"], [hd])
            self.assertEqual(header["model.layers.0.self_attn.k_norm.weight"]["shape"], [hd])
            self.assertEqual(header["model.layers.0.self_attn.q_proj.weight"]["shape"],
                             [heads * hd, d // 64])
        p = subprocess.run([MKMODEL, "--help"], capture_output=True, text=True, timeout=30)
        self.assertIn("gemma3-27b", p.stdout)
        # a reduced 27B (8 layers: full at 5, window 1024 > the prompt) through the engine
        self.run_mkmodel("g27", "--preset", "gemma3-27b", "--no-tokenizer", "--vocab", "128",
                         "--layers", "8", "--hidden", "64", "--ffn", "96", "--heads", "4",
                         "--kv-heads", "2", "--dtype", "f32", "--window", "3")
        import numpy as np
        from gemma_ref import GemmaRef
        ids = [2, 17, 5, 99, 3, 64, 8, 120, 11, 7]
        model = os.path.join(self.tmp, "g27")
        p = subprocess.run([SHIELDCTL, "logits", "--model", model, "--ids",
                            ",".join(map(str, ids))], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = np.array([float(l.split()[1]) for l in p.stdout.splitlines()])
        want = GemmaRef(model).logits(ids)
        self.assertLess(float(np.abs(got - want).max()), 1e-4)

    def test_bad_arguments(self):
        self.run_mkmodel("x", "--preset", "nope", ok=False)
        self.run_mkmodel("x", "--preset", "tiny", "--no-tokenizer", ok=False)
        self.run_mkmodel("x", "--preset", "tiny", "--no-tokenizer", "--vocab", "64",
                         "--heads", "3", ok=False)
        self.run_mkmodel("x", "--preset", "tiny", "--no-tokenizer", "--vocab", "abc", ok=False)
        self.run_mkmodel("x", "--preset", "tiny", "--dtype", "f16", ok=False)
        self.run_mkmodel("x", "--preset", "tiny", "--tokenizer",
                         os.path.join(self.tmp, "missing.json"), ok=False)
        p = subprocess.run([MKMODEL], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--out", p.stderr)
        p = subprocess.run([MKMODEL, "--preset", "tiny", "--gguf", "/nonexistent/dir/x.gguf",
                            "--no-tokenizer", "--vocab", "64"], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("/nonexistent/dir/x.gguf", p.stderr)
        p = subprocess.run([MKMODEL, "--preset", "gemma3-1b", "--gguf",
                            os.path.join(self.tmp, "g3.gguf"), "--no-tokenizer", "--vocab", "64"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Gemma 3", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "g3.gguf")))


if __name__ == "__main__":
    unittest.main()
