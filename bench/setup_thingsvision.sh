#!/usr/bin/env bash
# Create the bench-only THINGSvision environment used by bench/extract.py.
#
#   bash bench/setup_thingsvision.sh [VENV]     (default VENV: .venv/bench, git-ignored)
#
# The venv sees the system packages (torch, numpy, timm, metamers, ...) and adds only
# thingsvision and the two small packages it imports, all with --no-deps, so nothing
# in the system environment is downgraded. TensorFlow, which thingsvision 2.7.3 imports
# unconditionally, is not installed: bench/extract.py stands in an inert placeholder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv/bench}"
SYSTEM_PYTHON="${PYTHON:-python3}"

"$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-deps -r "$ROOT/bench/requirements-thingsvision.txt"

want="$("$SYSTEM_PYTHON" -c 'import torch; print(torch.__version__)')"
have="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
if [ "$want" != "$have" ]; then
    echo "error: torch in $VENV is $have, system has $want" >&2
    exit 1
fi
"$VENV/bin/python" -c "
import sys; sys.path.insert(0, '$ROOT/bench')
import extract; print('tensorflow:', extract._install_tensorflow_placeholder())
import thingsvision, torch, metamers
print('thingsvision', thingsvision.__version__, '| torch', torch.__version__)
"
echo "ready: $VENV/bin/python"
