// tok_reference.js: reference token ids for the tokenizer tests, from Hugging Face's own
// `tokenizers` (the Rust library, npm binding) and from @lenml/tokenizers (a JavaScript port of
// transformers.js), both loading the same tokenizer.json.
//
//   node tok_reference.js TOKENIZER_JSON CORPUS_JSONL OUT_JSONL
//
// For each corpus line (a JSON string) writes one JSON line [hf_template, hf_user,
// lenml_template, lenml_user] of id arrays, without BOS. "template": added tokens, special
// ones included, are split out (HF's default). "user": the same tokenizer with the special
// added tokens removed from added_tokens, so their text is ordinary text (what
// SG_TOK_USER means). One process tokenizes the whole corpus.
'use strict';
const fs = require('fs');
const path = require('path');

const modules = path.join(__dirname, '..', '..', '.cache', 'npm', 'node_modules');
const hf = require(path.join(modules, 'tokenizers'));
const lenml = require(path.join(modules, '@lenml', 'tokenizers'));

async function main() {
    const [jsonPath, corpusPath, outPath] = process.argv.slice(2);
    const text = fs.readFileSync(jsonPath, 'utf8');
    const tj = JSON.parse(text);
    const userJ = JSON.parse(text);
    userJ.added_tokens = userJ.added_tokens.filter((a) => !a.special);

    const hfT = hf.Tokenizer.fromString(text);
    const hfU = hf.Tokenizer.fromString(JSON.stringify(userJ));
    const config = {tokenizer_class: 'GemmaTokenizer', add_bos_token: true, add_eos_token: false};
    const lT = lenml.TokenizerLoader.fromPreTrained({tokenizerJSON: tj, tokenizerConfig: config});
    const lU = lenml.TokenizerLoader.fromPreTrained({tokenizerJSON: userJ, tokenizerConfig: config});

    const lines = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l.length > 0);
    const strs = lines.map((l) => JSON.parse(l));
    const opts = {addSpecialTokens: false};
    const et = await hfT.encodeBatch(strs, opts);
    const eu = await hfU.encodeBatch(strs, opts);
    const out = [];
    for (let i = 0; i < strs.length; i++) {
        const lt = lT.encode(strs[i], {add_special_tokens: false});
        const lu = lU.encode(strs[i], {add_special_tokens: false});
        out.push(JSON.stringify([et[i].getIds(), eu[i].getIds(), lt, lu]));
    }
    fs.writeFileSync(outPath, out.join('\n') + '\n');
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
