# Shared by scripts/demo and scripts/test: make (or reuse) a venv and install neuromirror into it.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS e.g. "standins" or "test")
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NEUROMIRROR_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment in $VENV" >&2
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.neuromirror-installed-$1"
# the stamp names the checkout installed (editable): a venv shared with another clone is reinstalled from this one
if [ ! -f "$STAMP" ] || [ "$HERE/setup.cfg" -nt "$STAMP" ] || [ "$(cat "$STAMP")" != "$HERE" ]; then
    echo "installing neuromirror[$1] into $VENV (first run takes a few minutes)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$HERE[$1]" >&2
    echo "$HERE" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# lindi (LINDI references of NWB files) pins zarr < 3 (lindi#119) while the venv reads Zarr with zarr 3: it goes
# into an overlay of its own, which the tests that need it put on PYTHONPATH (tests/helpers/lindi_env.py)
OVERLAY="$VENV/lindi-overlay"
if [ ! -d "$OVERLAY/lindi" ]; then
    echo "installing lindi and zarr 2 into $OVERLAY (for the LINDI reference tests)" >&2
    "$VENV/bin/python" -m pip install -q --target "$OVERLAY" --no-deps \
        zarr==2.18.7 numcodecs==0.15.1 lindi==0.4.6 asciitree fasteners deprecated wrapt >&2
fi
