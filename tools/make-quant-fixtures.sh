#!/bin/sh
# tools/make-quant-fixtures.sh: regenerate tests/fixtures/quant/ (quantized tiny models and their
# float64 reference logits) with tools/gguf_quantize.py. Deterministic; run from anywhere.
#
#   tiny-a-q8_0.gguf, tiny-a-q4_0.gguf   tiny-a (rows of 64/128: K-quants cannot apply, so the
#                                        embedding falls back to Q8_0 as in llama.cpp)
#   tiny-k-q4_k.gguf, tiny-k-q6_k.gguf   a random Gemma 2 with rows of 256 (synth, seed 1),
#                                        embedding Q6_K as llama.cpp stores the tied output
#   tiny-k-mix.gguf                      the same, Q4_K_M-like mixture: Q4_K, Q5_K, Q6_K and a
#                                        Q8_0 embedding
#   *.ref.txt                            float64 logits of that very file (weights dequantized)
#   tiny-k-f32.ref.txt                   float64 logits of tiny-k before quantization
# tiny-a's own f32 reference is tests/fixtures/tiny-a/ref_f64_last.txt (the golden).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
q="$py $top/tools/gguf_quantize.py"
out="$top/tests/fixtures/quant"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# the tiny-a prompt (48 ids) and a 16-token prompt for tiny-k (sliding window 4)
ta=2,4,1379,17,354,1203,2060,1901,838,4022,640,3997,4057,339,4045,4041,4041,4068,3675,960,370
ta=$ta,1422,336,4090,641,653,368,3997,4038,4045,4057,4062,4063,322,1430,4007,202,176,3997,247
ta=$ta,166,159,135,282,4023,4017,5,17
tk=2,17,100,45,9,200,31,77,5,250,128,64,3,99,1,180

for t in q8_0 q4_0; do
    $q quantize "$top/tests/fixtures/tiny-a/model-f32.gguf" "$out/tiny-a-$t.gguf" --type $t 2>/dev/null
    $q ref "$out/tiny-a-$t.gguf" --tokens $ta > "$out/tiny-a-$t.ref.txt"
done
$q synth "$tmp/tiny-k-f32.gguf" --seed 1
$q ref "$tmp/tiny-k-f32.gguf" --tokens $tk --all > "$out/tiny-k-f32.ref.txt"
for t in q4_k q6_k mix; do
    $q quantize "$tmp/tiny-k-f32.gguf" "$out/tiny-k-$t.gguf" --type $t 2>/dev/null
    $q ref "$out/tiny-k-$t.gguf" --tokens $tk --all > "$out/tiny-k-$t.ref.txt"
done
$q seeds "$top/tests/fuzz/seeds/fuzz_gguf"
