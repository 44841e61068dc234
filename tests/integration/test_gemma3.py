"""Gemma 3 end to end, against an independent float64 reference.

- `shieldctl logits --all-positions` on tiny random Gemma 3 models (tests/integration/
  gemma3_tiny.py: 8 layers in a 5:1 pattern, window 5 < the 24-token prompt, GQA 4/2, QK-norm,
  query_pre_attn_scalar 24 != head_dim 16, RoPE bases 1e6 (full, linear factor 4) and 1e4
  (sliding)) in HF F32 / BF16, GGUF F32 / BF16, the two multimodal layouts with the
  Gemma3TextConfig defaults taken for absent keys, and a transformers-5 config (rope_parameters,
  an irregular layer_types): every logit within 1e-4 of tests/integration/gemma_ref.py (numpy,
  float64, written from transformers' modeling_gemma3.py, shares no code with the engine).
- The fixtures bite: the reference with any one Gemma 3 feature removed is far from the engine.
- `--verbose` names every key that took its default and the ignored vision tower.
- Every configuration error has a clear message naming the key (or tensor).
- `shieldctl classify` on a small Gemma 3 (mkmodel --preset gemma3-4b, reduced) with the real
  Gemma 3 tokenizer equals the reference probabilities (HF tokenization by @lenml/tokenizers).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemma3_tiny as g3  # noqa: E402
from gemma_ref import GemmaRef, p_violation  # noqa: E402
from clients_common import MKMODEL, POLICIES, SHIELDCTL, TOP  # noqa: E402

TOL = 1e-4
IDS = [2] + [int(x) for x in np.random.default_rng(5).integers(3, 300, size=23)]
DEFAULTED = ("rope_theta", "rope_local_base_freq", "sliding_window_pattern",
             "query_pre_attn_scalar", "rms_norm_eps", "max_position_embeddings")
NODE_MODULES = os.path.join(TOP, ".cache", "npm", "node_modules")
G3_TOK = os.path.join(NODE_MODULES, "@lenml", "tokenizer-gemma3", "models")


def logits(model, ids=IDS, extra=()):
    p = subprocess.run([SHIELDCTL, "logits", "--model", model, "--ids", ",".join(map(str, ids)),
                        "--all-positions", "--threads", "2"] + list(extra),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("shieldctl logits %s: %s" % (model, p.stderr))
    rows, cur = {}, None
    for line in p.stdout.splitlines():
        if line.startswith("position "):
            cur = rows.setdefault(int(line.split()[1]), [])
        else:
            cur.append(float(line.split()[1]))
    return np.array([rows[i] for i in range(len(ids))]), p.stderr


def fails(model):
    p = subprocess.run([SHIELDCTL, "logits", "--model", model, "--ids", "2,3"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


class Models:
    tmp = None

    @classmethod
    def get(cls):
        if cls.tmp is None:
            cls.tmp = tempfile.mkdtemp(prefix="sg-gemma3-")
            t = cls.tmp
            g3.hf(os.path.join(t, "hf_f32"), g3.BASE, "f32")
            g3.hf(os.path.join(t, "hf_bf16"), g3.BASE, "bf16")
            g3.gguf(os.path.join(t, "f32.gguf"), g3.BASE, "f32")
            g3.gguf(os.path.join(t, "bf16.gguf"), g3.BASE, "bf16")
            sparse = dict(g3.BASE, omit=DEFAULTED)
            g3.hf(os.path.join(t, "mm_new"), sparse, "f32", "mm-new", seed=2)
            g3.hf(os.path.join(t, "mm_old"), sparse, "bf16", "mm-old", seed=2)
            v5 = dict(g3.BASE, layer_types=["sliding_attention", "full_attention"] * 2 +
                      ["sliding_attention"] * 3 + ["full_attention"],
                      rope_parameters={
                          "full_attention": {"rope_type": "linear", "factor": 2.0,
                                             "rope_theta": 500000.0},
                          "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
                      omit=("rope_theta", "rope_local_base_freq", "rope_scaling",
                            "sliding_window_pattern"))
            g3.hf(os.path.join(t, "v5"), v5, "f32", seed=3)
        return cls.tmp

    @classmethod
    def cleanup(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)


def tearDownModule():
    Models.cleanup()
    Classify.cleanup()


class LogitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Models.get()
        cls.ref = {}
        for name in ("hf_f32", "mm_new", "v5"):
            cls.ref[name] = GemmaRef(os.path.join(cls.dir, name)).logits(IDS, all_positions=True)

    def check(self, model, ref):
        got, _ = logits(os.path.join(self.dir, model))
        want = self.ref[ref]
        self.assertEqual(got.shape, want.shape)
        err = float(np.abs(got - want).max())
        print("\ngemma3 %-9s max |logit - float64| = %.3g (logits up to %.2f)" %
              (model, err, float(np.abs(want).max())))
        self.assertLess(err, TOL, model)
        return got

    def test_hf_and_gguf(self):
        for model in ("hf_f32", "hf_bf16", "f32.gguf", "bf16.gguf"):
            with self.subTest(model=model):
                self.check(model, "hf_f32")

    def test_multimodal_layouts_with_defaults(self):
        a = self.check("mm_new", "mm_new")
        b = self.check("mm_old", "mm_new")
        self.assertEqual(a.tolist(), b.tolist())  # same weights, BF16 exact: same bits

    def test_transformers5_rope_parameters_and_layer_types(self):
        self.check("v5", "v5")

    def test_fixture_exercises_every_feature(self):
        """Each Gemma 3 feature, removed from the reference, moves the logits far beyond TOL."""
        got, _ = logits(os.path.join(self.dir, "hf_f32"))
        path = os.path.join(self.dir, "hf_f32")

        def without(change):
            r = GemmaRef(path)
            change(r)
            return float(np.abs(r.logits(IDS, all_positions=True) - got).max())

        cases = {
            "QK-norm": lambda r: setattr(r, "gemma3", False),
            "the sliding window": lambda r: setattr(r, "sliding", [False] * r.n_layer),
            "the 5:1 pattern (Gemma 2 alternation)":
                lambda r: setattr(r, "sliding", [l % 2 == 0 for l in range(r.n_layer)]),
            "the local RoPE base": lambda r: r.rope_kind.update({True: r.rope_kind[False]}),
            "the linear factor": lambda r: r.rope_kind.update({False: (r.theta, 1.0)}),
            "query_pre_attn_scalar": lambda r: setattr(r, "scale", r.hd ** -0.5),
        }
        for what, change in cases.items():
            d = without(change)
            self.assertGreater(d, 100 * TOL, "without %s the reference is still within %g" %
                               (what, d))

    def test_verbose_names_defaults_and_ignored_parts(self):
        _, err = logits(os.path.join(self.dir, "mm_old"), extra=["--verbose"])
        for key in DEFAULTED:
            self.assertIn("key 'text_config.%s' absent" % key, err)
        self.assertIn("the vision tower (vision_config) is ignored", err)
        self.assertIn("under 'language_model.model.'; 3 tensors of the vision tower", err)
        self.assertIn("query_pre_attn_scalar' absent: 256 (the gemma3_text default)", err)
        self.assertIn("layers (S sliding, F full): SSSSSFSS", err)
        self.assertIn("rope full layers: theta 1e+06, linear factor 4; sliding layers: theta "
                      "10000, factor 1", err)
        _, err = logits(os.path.join(self.dir, "bf16.gguf"), extra=["--verbose"])
        self.assertIn("key 'gemma3.rope.freq_base_swa' absent: 10000 (llama.cpp's default)", err)
        self.assertIn("llama.cpp's fixed layer pattern, every 6th layer full", err)
        self.assertIn("query_scale 0.204124", err)  # gemma3.attention.scale = 24^-0.5
        self.assertIn("layers (S sliding, F full): SSSSSFSS", err)


def edit_config(src, dst, change):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "config.json")
    with open(path) as f:
        c = json.load(f)
    change(c)
    with open(path, "w") as f:
        json.dump(c, f)
    return dst


def drop_tensor(src, dst, name):
    """A copy of the folder whose model.safetensors lacks `name` (or has it resized)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, "model.safetensors")
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out, parts, off = {}, [], 0
    for k, v in header.items():
        if k == name:
            continue
        a, b = v["data_offsets"]
        out[k] = dict(v, data_offsets=[off, off + b - a])
        parts.append(data[a:b])
        off += b - a
    h = json.dumps(out).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(parts))
    return dst


class ConfigErrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Models.get()

    def expect(self, change, *subs, base="hf_f32"):
        d = edit_config(os.path.join(self.dir, base),
                        os.path.join(tempfile.mkdtemp(dir=self.dir), "m"), change)
        rc, err = fails(d)
        self.assertEqual(rc, 1, err)
        self.assertIn("config.json", err)
        for s in subs:
            self.assertIn(s, err)

    def test_rope_scaling(self):
        self.expect(lambda c: c.update(rope_scaling={"rope_type": "yarn", "factor": 8.0}),
                    "key 'rope_scaling.rope_type'", "found \"yarn\"",
                    "unsupported RoPE scaling type")
        self.expect(lambda c: c.update(rope_scaling={"type": "dynamic", "factor": 2.0}),
                    "key 'rope_scaling.type'", "\"dynamic\"")
        self.expect(lambda c: c.update(rope_scaling={"rope_type": "linear"}),
                    "key 'rope_scaling.factor'", "no such key")
        self.expect(lambda c: c.update(rope_scaling={"rope_type": "linear", "factor": -2}),
                    "key 'rope_scaling.factor'", "found -2")
        self.expect(lambda c: c.update(rope_scaling="linear"), "key 'rope_scaling'",
                    "an object or null")
        self.expect(lambda c: c.update(rope_parameters={"full_attention": {
            "rope_type": "llama3", "factor": 8.0}}),
            "key 'rope_parameters.full_attention.rope_type'", "\"llama3\"")
        self.expect(lambda c: c.update(rope_local_base_freq="big"),
                    "key 'rope_local_base_freq'", "string \"big\"")

    def test_layer_pattern(self):
        self.expect(lambda c: c.update(layer_types=["sliding_attention"] * 7),
                    "key 'layer_types'", "an array of 8 layer types")
        self.expect(lambda c: c.update(layer_types=["sliding_attention"] * 7 + ["chunked"]),
                    "key 'layer_types': entry 7", "\"chunked\"")
        self.expect(lambda c: c.update(sliding_window_pattern=0),
                    "key 'sliding_window_pattern'", "found 0")
        self.expect(lambda c: c.update(sliding_window=None), "key 'sliding_window'",
                    "found null")

    def test_unsupported_options(self):
        self.expect(lambda c: c.update(attention_bias=True), "key 'attention_bias'",
                    "expected false, found true")
        self.expect(lambda c: c.update(use_bidirectional_attention=True),
                    "key 'use_bidirectional_attention'", "causal attention only")
        self.expect(lambda c: c.update(query_pre_attn_scalar=0), "key 'query_pre_attn_scalar'")
        self.expect(lambda c: c.update(model_type="gemma3n"), "key 'model_type'",
                    "\"gemma3n\"", "unsupported architecture")

    def test_multimodal(self):
        self.expect(lambda c: c.pop("text_config"), "key 'text_config'", "no such key",
                    base="mm_new")
        self.expect(lambda c: c["text_config"].update(model_type="siglip"),
                    "key 'text_config.model_type'", "\"gemma3_text\"", base="mm_new")
        self.expect(lambda c: c["text_config"].update(num_key_value_heads=3),
                    "key 'text_config.num_key_value_heads'", "dividing", base="mm_new")
        self.expect(lambda c: c["text_config"].update(rope_scaling={"rope_type": "longrope"}),
                    "key 'text_config.rope_scaling.rope_type'", base="mm_new")

    def test_tensors(self):
        d = drop_tensor(os.path.join(self.dir, "hf_f32"), os.path.join(self.dir, "noqn"),
                        "model.layers.3.self_attn.q_norm.weight")
        rc, err = fails(d)
        self.assertEqual(rc, 1)
        self.assertIn("missing tensor 'model.layers.3.self_attn.q_norm.weight'", err)
        # a multimodal checkpoint without its language model's embedding
        d = drop_tensor(os.path.join(self.dir, "mm_new"), os.path.join(self.dir, "noemb"),
                        "model.language_model.embed_tokens.weight")
        rc, err = fails(d)
        self.assertEqual(rc, 1)
        self.assertIn("missing tensor 'model.language_model.embed_tokens.weight'", err)

    def test_tokenizer_past_the_vocabulary(self):
        """Gemma 3's tokenizer.json has <image_soft_token> = 262144 while the 1B's vocab_size is
        262144: special pieces past the model's vocabulary are accepted, others refused."""
        for special in (True, False):
            d = os.path.join(tempfile.mkdtemp(dir=self.dir), "m")
            shutil.copytree(os.path.join(self.dir, "hf_f32"), d)
            vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
            vocab.update({"<0x%02X>" % b: 4 + b for b in range(256)})
            vocab.update({"t%d" % i: i for i in range(260, 300)})
            added = [{"id": i, "content": p, "special": True, "normalized": False}
                     for p, i in list(vocab.items())[:4]]
            added.append({"id": 300, "content": "<image_soft_token>", "special": special,
                          "normalized": False})
            tok = {"added_tokens": added,
                   "normalizer": {"type": "Replace", "pattern": {"String": " "},
                                  "content": "\u2581"},
                   "model": {"type": "BPE", "vocab": dict(vocab, **{"<image_soft_token>": 300}),
                             "merges": [], "byte_fallback": True, "unk_token": "<unk>"}}
            with open(os.path.join(d, "tokenizer.json"), "w") as f:
                json.dump(tok, f)
            p = subprocess.run([SHIELDCTL, "bench", "--model", d, "--no-classify", "--tokens",
                                "8", "--reps", "1", "--threads", "1", "--precision", "f32"],
                               capture_output=True, text=True, timeout=120)
            if special:
                self.assertEqual(p.returncode, 0, p.stderr)
            else:
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("the tokenizer has 301 pieces, expected at most the model's "
                              "vocab_size 300 (piece 300 '<image_soft_token>' is not a special "
                              "token)", p.stderr)

    def test_gguf(self):
        import gguf_quantize as gq
        kvs, tensors, align = gq.read_gguf(os.path.join(self.dir, "f32.gguf"))
        cases = [
            ([(k, t, b"yarn" if k == "gemma3.rope.scaling.type" else v) for k, t, v in kvs],
             tensors, ["key 'gemma3.rope.scaling.type'", "\"yarn\"", "unsupported RoPE"]),
            ([kv for kv in kvs if kv[0] != "gemma3.attention.sliding_window"], tensors,
             ["required key 'gemma3.attention.sliding_window' is absent"]),
            (kvs, [t for t in tensors if t["name"] != "blk.2.attn_k_norm.weight"],
             ["missing tensor 'model.layers.2.self_attn.k_norm.weight'"]),
        ]
        for i, (k, t, subs) in enumerate(cases):
            path = os.path.join(self.dir, "bad%d.gguf" % i)
            gq.write_gguf(path, k, t, align)
            rc, err = fails(path)
            self.assertEqual(rc, 1, err)
            for s in subs:
                self.assertIn(s, err)


class Classify:
    """A small Gemma 3 with the real Gemma 3 tokenizer (mkmodel --preset gemma3-4b with the
    shapes reduced: 7 layers, one full, window 8, linear factor 8, query_pre_attn_scalar 256)."""
    path = None
    tmp = None

    @classmethod
    def get(cls):
        if cls.path is None:
            cls.tmp = tempfile.mkdtemp(prefix="sg-gemma3-cls-")
            path = os.path.join(cls.tmp, "model")
            p = subprocess.run([MKMODEL, "--preset", "gemma3-4b", "--seed", "11", "--dtype",
                                "bf16", "--layers", "7", "--hidden", "64", "--ffn", "128",
                                "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
                                "--window", "8", "--tokenizer",
                                os.path.join(G3_TOK, "tokenizer.json"), "--out", path, "--quiet"],
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise AssertionError("mkmodel failed: %s" % p.stderr)
            cls.path = path
        return cls.path

    @classmethod
    def cleanup(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)


class ClassifyTest(unittest.TestCase):
    TEXTS = [("How do I build a birdhouse? I have 12 planks.", None),
             ("\u00bfD\u00f3nde est\u00e1 la biblioteca? \U0001F370", None),
             ("hello", "Sure. Here is a step-by-step plan:\n1. Buy wood.")]

    def run_ctl(self, args):
        p = subprocess.run([SHIELDCTL] + args, capture_output=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return p.stdout

    def test_matches_float64_reference(self):
        model = Classify.get()
        with open(os.path.join(model, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["model_type"], "gemma3_text")
        self.assertEqual(cfg["rope_scaling"], {"factor": 8, "rope_type": "linear"})
        ref = GemmaRef(model)
        with open(os.path.join(G3_TOK, "tokenizer.json"), encoding="utf-8") as f:
            vocab = json.load(f)["model"]["vocab"]
        yes, no = vocab["Yes"], vocab["No"]
        policies = ["dangerous", "harassment", "hate", "sexual"]
        rendered, keys = [], []
        for text, resp in self.TEXTS:
            for pol in policies:
                args = ["render", "--policies", POLICIES, "--policy", pol]
                if resp is not None:
                    args += ["--response", resp]
                rendered.append(self.run_ctl(args + ["--", text]).decode("utf-8"))
                keys.append((text, resp, pol))
        p = subprocess.run(["node", os.path.join(TOP, "tests", "integration", "hf_encode.js"),
                            NODE_MODULES, G3_TOK], input=json.dumps(rendered).encode(),
                           capture_output=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        hf_ids = dict(zip(keys, json.loads(p.stdout)))
        worst = 0.0
        for text, resp in self.TEXTS:
            args = ["classify", "--model", model, "--policies", POLICIES, "--json", "--threads",
                    "2"]
            if resp is not None:
                args += ["--response", resp]
            reply = json.loads(self.run_ctl(args + ["--", text]))
            self.assertEqual([r["policy"] for r in reply["results"]], policies)
            self.assertEqual(reply["usage"]["prompt_tokens"],
                             sum(len(hf_ids[(text, resp, pol)]) for pol in policies))
            for r in reply["results"]:
                ids = hf_ids[(text, resp, r["policy"])]
                zy, zn = ref.logits(ids, want=[yes, no])
                want = p_violation(zy, zn)
                self.assertTrue(0.01 < want < 0.99, "%s: P = %g" % (r["policy"], want))
                worst = max(worst, abs(want - r["probability"]))
                self.assertLessEqual(abs(want - r["probability"]), 2e-5,
                                     "%s: engine %.8f, float64 %.8f" %
                                     (r["policy"], r["probability"], want))
        print("\ngemma3 classify: max |P engine - P float64| = %.3g" % worst)

    def test_other_answer_pieces_by_editing_yaml(self):
        """Another Yes/No classifier on Gemma 3: only template.yaml changes (answer pieces
        "True" / "False", another preamble)."""
        model = Classify.get()
        d = tempfile.mkdtemp(prefix="sg-g3-pol-")
        try:
            for f in os.listdir(POLICIES):
                if f.endswith(".yaml"):
                    shutil.copy(os.path.join(POLICIES, f), d)
            with open(os.path.join(d, "template.yaml"), encoding="utf-8") as f:
                t = f.read()
            t = t.replace('answer_yes: "Yes"', 'answer_yes: "True"')
            t = t.replace('answer_no: "No"', 'answer_no: "False"')
            t = t.replace("You are a policy expert", "You are a careful policy expert")
            with open(os.path.join(d, "template.yaml"), "w", encoding="utf-8") as f:
                f.write(t)
            text = "Is this fine?"
            rendered = self.run_ctl(["render", "--policies", d, "--policy", "hate", "--",
                                     text]).decode("utf-8")
            self.assertIn("careful policy expert", rendered)
            p = subprocess.run(["node", os.path.join(TOP, "tests", "integration",
                                                     "hf_encode.js"), NODE_MODULES, G3_TOK],
                               input=json.dumps([rendered]).encode(), capture_output=True,
                               timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            ids = json.loads(p.stdout)[0]
            with open(os.path.join(G3_TOK, "tokenizer.json"), encoding="utf-8") as f:
                vocab = json.load(f)["model"]["vocab"]
            zt, zf = GemmaRef(model).logits(ids, want=[vocab["True"], vocab["False"]])
            reply = json.loads(self.run_ctl(["classify", "--model", model, "--policies", d,
                                             "--policy", "hate", "--json", "--", text]))
            self.assertLessEqual(abs(reply["results"][0]["probability"] - p_violation(zt, zf)),
                                 2e-5)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
