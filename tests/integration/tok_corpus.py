"""Deterministic corpus of hard strings for the tokenizer comparison tests.

corpus() returns the same list of str on every run and Python version: the only randomness
is a fixed linear congruential generator seeded with a constant. No string contains a lone
surrogate (every string is valid Unicode, so it is valid UTF-8 once encoded).
"""

SEED = 20261122


class Lcg:
    """64-bit LCG (Knuth MMIX constants): stable across Python versions, unlike random."""

    def __init__(self, seed):
        self.x = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return self.x >> 33

    def below(self, n):
        return self.next() % n

    def choice(self, seq):
        return seq[self.below(len(seq))]


LATIN = ["café", "naïve", "façade", "Ærøskøbing", "Dvořák", "Łódź", "İstanbul", "straße",
         "Ångström", "jalapeño", "über", "coöperate", "Ōsaka", "Şişli", "Việt Nam", "Đà Nẵng",
         "résumé", "ﬁnance", "Ǆemal", "ñandú"]
CJK = ["你好，世界", "東京都渋谷区", "こんにちは世界", "カタカナとひらがな", "한국어 텍스트",
       "漢字仮名交じり文", "中文测试：标点符号！", "𠀀𠀁𪚥", "ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ"]
RTL = ["مرحبا بالعالم", "السَّلامُ عَلَيْكُم", "שלום עולם", "עִבְרִית מְנֻקֶּדֶת",
       "العربية 123 English", "فارسی: سلام"]
INDIC = ["नमस्ते दुनिया", "हिन्दी में लिखा", "क्षत्रिय", "தமிழ் மொழி", "বাংলা ভাষা",
         "ภาษาไทยไม่มีช่องว่าง", "สวัสดีครับ", "ລາວ", "ကမ္ဘာ"]
EMOJI = ["😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇩🇪", "❤️", "🧑🏿‍🚀", "1️⃣",
         "🤷‍♀️", "🫠", "👋🏻👋🏼👋🏽👋🏾👋🏿"]
COMBINING = ["e\u0301", "a\u0308\u0304", "Z\u0351\u0352\u0353\u0354", "n\u0303o",
             "\u0915\u094d\u0937", "o\u0328\u0301"]
ZERO_WIDTH = ["a\u200bb", "zero\u200cwidth\u200djoiner", "\ufeffBOM", "soft\u00adhyphen",
              "word\u2060joiner", "\u200e\u200fmarks"]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", " \t ", "\r\n", "\r\n\r\n", "\n", "\n\n",
              "\n\n\n\n\n", "\n" * 31, "\n" * 40, " " * 31, " " * 64, "\u00a0", "\u3000",
              "\u2003", "\v\f", "\u2581", "\u2581\u2581", " \u2581 "]
NUMBERS = ["0", "7", "42", "1234567890", "3.14159", "-273.15", "1,000,000", "1e-10", "0x7FFF",
           "2026-11-22", "12:34:56", "$19.99", "€5", "٣٤٥", "१२३", "½", "²³", "Ⅻ"]
URLS = ["https://example.com/path?q=1&r=%20x#frag", "http://localhost:8080/",
        "mailto:someone@example.org", "ftp://ftp.example.net/pub/file.tar.gz",
        "www.test-site.co.uk/a/b/c.html", "user@host:~/dir$ ls -la"]
CODE = ["def f(x):\n    return x * 2\n", "int main(void) { return 0; }",
        "for (i = 0; i < n; i++) {\n\tsum += a[i];\n}", "SELECT * FROM t WHERE id = 1;",
        "const x = () => { console.log(`hi ${name}`); };", "#include <stdio.h>",
        "if x != nil {\n\t\treturn err\n\t}", "λx.x", "a && b || !c", "x <<= 2; y >>= 3;",
        "{\"key\": [1, 2, {\"n\": null}]}", "<?php echo $x; ?>", "    indented\n        more"]
HTML = ["<table><tr><td>cell</td></tr></table>", "<h1>Title</h1>", "<b>bold</b> and <i>it</i>",
        "<code>x = 1</code>", "<strong>", "</s>", "<s>strike</s>", "<sub>2</sub><sup>3</sup>",
        "<blockquote>quote</blockquote>", "<div class=\"x\">y</div>", "<br/>", "&amp; &lt;&gt;",
        "<caption>c</caption><thead>", "<u>u</u><em>em</em>"]
MARKDOWN = ["# Heading\n\nText with **bold** and _italic_.", "- item 1\n- item 2\n  - nested",
            "```python\nprint('x')\n```", "| a | b |\n|---|---|\n| 1 | 2 |", "> quote\n>> nested",
            "[link](https://x.y) ![img](a.png)", "1. one\n2. two", "***", "~~strike~~"]
SPECIALS = ["<bos>", "<eos>", "<pad>", "<unk>", "<start_of_turn>", "<end_of_turn>",
            "<start_of_turn>user\nhi<end_of_turn>\n", "<end_of_turn><start_of_turn>model\nYes",
            "<mask>", "<2mass>", "[@BOS@]", "<unused0>", "<unused42>", "<unused98>",
            "<start_of_turn", "end_of_turn>", "<<end_of_turn>>", "<end_of_turn<end_of_turn>",
            "x<eos>y", "<bos><bos>", "< end_of_turn >", "<END_OF_TURN>", "</end_of_turn>"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer",
         "content", "moderation", "policy", "violation", "harassment", "dangerous", "Yes",
         "No", "model", "user", "antidisestablishmentarianism", "I", "a", "an", "is", "it's",
         "don't", "U.S.A.", "e.g.", "well-known", "co-operate", "snake_case", "camelCase",
         "HTTPServer", "x86_64", "iPhone", "O'Brien", "naïveté", "Mr.", "3D", "COVID-19"]
PUNCT = [".", ",", "!", "?", ";", ":", "...", "—", "–", "-", "(", ")", "[", "]", "{", "}",
         "\"", "'", "«", "»", "“", "”", "‘", "’", "/", "\\", "|", "@", "#", "%", "^", "&", "*",
         "~", "`", "+", "=", "<", ">", "…", "·", "•", "§", "¶", "©", "®", "™", "°"]

SHIELD_TEMPLATE = (
    "You are a policy expert trying to help determine whether a user prompt is in violation "
    "of the defined safety policies.\n\n<start_of_turn>\nHuman Question: {msg}\n<end_of_turn>\n\n"
    "Our safety principle is defined in the below:\n\n* \"No Harassment\": The prompt shall not "
    "contain or seek generation of content that is malicious, intimidating, bullying, or "
    "abusive content targeting another individual.\n\n===\n\nDoes the human question violate "
    "the above principle? Your answer must start with 'Yes' or 'No'. And then walk through "
    "step by step to be sure we answer correctly.\n\n")

POOLS = [LATIN, CJK, RTL, INDIC, EMOJI, COMBINING, ZERO_WIDTH, WHITESPACE, NUMBERS, URLS, CODE,
         HTML, MARKDOWN, WORDS, WORDS, WORDS, PUNCT]


def _mixed(rng, n_parts, pools):
    out = []
    for _ in range(n_parts):
        out.append(rng.choice(rng.choice(pools)))
        r = rng.below(6)
        if r < 3:
            out.append(" ")
        elif r == 3:
            out.append(rng.choice(WHITESPACE))
    return "".join(out)


def _random_chars(rng, n):
    """Code points from assorted planes and blocks (no surrogates)."""
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
              (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF),
              (0x2000, 0x206F), (0x2190, 0x23FF), (0x2500, 0x27BF), (0x3000, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xE0FF), (0xFB00, 0xFFFD),
              (0x10000, 0x1007F), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
              (0x0, 0x1F), (0x7F, 0x9F), (0xF0000, 0xF00FF), (0x10FF00, 0x10FFFF)]
    s = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        s.append(chr(lo + rng.below(hi - lo + 1)))
    return "".join(s)


def corpus():
    rng = Lcg(SEED)
    out = ["", " ", "a", "\n", "  leading", "trailing  ", "Hello, world!",
           "The GNU General Public License, version 3 (2007): copy it freely! "
           "Numbers 12345 and café 😀 ok."]
    # every pool entry on its own, and with a leading space
    for pool in POOLS + [SPECIALS]:
        for s in pool:
            out.append(s)
            out.append(" " + s)
    # single characters: ASCII, Latin-1 and a spread of others
    for c in range(0, 0x250):
        out.append(chr(c))
    for _ in range(300):
        out.append(_random_chars(rng, 1))
    # mixed sentences
    for i in range(1200):
        out.append(_mixed(rng, 1 + rng.below(12), POOLS))
    # with special-token text embedded
    for i in range(250):
        out.append(_mixed(rng, 1 + rng.below(4), POOLS) + rng.choice(SPECIALS) +
                   _mixed(rng, rng.below(4), POOLS))
    # random code points
    for i in range(400):
        out.append(_random_chars(rng, 1 + rng.below(40)))
    # whitespace runs of every length up to 40, of several kinds
    for n in range(1, 41):
        for ch in (" ", "\n", "\t", "\r\n", "\u2581"):
            out.append("x" + ch * n + "y")
    # digit runs
    for n in range(1, 30):
        out.append("".join(str((i * 7 + n) % 10) for i in range(n)))
    # the ShieldGemma template around assorted messages
    for i in range(40):
        out.append(SHIELD_TEMPLATE.format(msg=_mixed(rng, 1 + rng.below(10), POOLS)))
    # long strings: long words, long runs, a long paragraph
    out.append("a" * 5000)
    out.append("ab" * 3000)
    out.append("supercalifragilisticexpialidocious" * 100)
    out.append("漢" * 3000)
    out.append("😀" * 1000)
    out.append("\u2581" * 200)
    out.append(" " * 1000 + "x")
    out.append("\n" * 100)
    out.append(" ".join(WORDS) * 20)
    out.append(_random_chars(rng, 4000))
    return out


if __name__ == "__main__":
    import json
    import sys
    for s in corpus():
        sys.stdout.write(json.dumps(s) + "\n")
