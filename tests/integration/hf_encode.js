// hf_encode.js: the Hugging Face tokenization (@lenml/tokenizers, a port of HF tokenizers) of
// strings, as the reference for the engine's tokenizer. Usage:
//   node hf_encode.js NODE_MODULES TOKENIZER_DIR < strings.json > ids.json
// strings.json is a JSON array of strings; ids.json the array of their id arrays, encoded with
// add_special_tokens = false (the rendered prompts carry their own "<bos>").
const fs = require('fs');
const path = require('path');
const [nodeModules, tokDir] = process.argv.slice(2);
const { TokenizerLoader } = require(path.resolve(nodeModules, '@lenml/tokenizers'));
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8'));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer_config.json'), 'utf8'));
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const strings = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = strings.map((s) => Array.from(tok.encode(s, { add_special_tokens: false })));
process.stdout.write(JSON.stringify(out));
