# Sourced by scripts/run and scripts/test: make .venv and install the project into it when needed.
# Usage: ensure_venv [EXTRAS]   (e.g. ensure_venv test)
set -euo pipefail

find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

ensure_venv() {
    local extras="${1:-}" spec="." stamp
    [ -n "$extras" ] && spec=".[$extras]"
    if [ ! -x .venv/bin/python ]; then
        local py
        py="$(find_python)"
        echo "creating .venv with $py" >&2
        if ! "$py" -m venv .venv; then
            echo "error: '$py -m venv' failed; install your distribution's venv package (e.g. python3-venv)" >&2
            return 1
        fi
    fi
    # Reinstall only when the package metadata changed or other extras are wanted.
    local hash
    hash="$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
    stamp=".venv/.tms-installed-$hash-${extras:-base}"
    # An install with the test extras also satisfies a plain one.
    if [ -z "$extras" ] && [ -f ".venv/.tms-installed-$hash-test" ]; then
        return 0
    fi
    if [ ! -f "$stamp" ]; then
        echo "installing tms_server into .venv ($spec); log in .venv/install.log" >&2
        .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip >.venv/install.log 2>&1 || true
        if ! .venv/bin/python -m pip install --disable-pip-version-check -e "$spec" >>.venv/install.log 2>&1; then
            tail -n 30 .venv/install.log >&2
            echo "error: installing the project failed; full log in .venv/install.log" >&2
            return 1
        fi
        rm -f .venv/.tms-installed-*
        touch "$stamp"
    fi
}
