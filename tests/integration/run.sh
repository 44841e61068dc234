#!/bin/sh
# tests/integration/run.sh: the integration tests, against the real binaries in $SG_BUILD.
# Each tests/integration/test_*.py is a unittest module (standard library only); the last line
# is the plain "N passed, N failed" summary.
set -u
top=${SG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${PYTHON:-/usr/bin/python3}
cd "$top" || exit 1
ls tests/integration/test_*.py >/dev/null 2>&1 || { echo "integration: 0 passed, 0 failed"; exit 0; }
exec "$py" tests/integration/runner.py
