#!/usr/bin/env bash
# Instructions per begin and per settle, counted by valgrind's callgrind (repeatable on a
# noisy machine, unlike time): four runs of `bench.instructions`, each phase adding one
# part of the workload, and the differences divided by N.
#   bench/callgrind.sh [N]        (default N=100; about two minutes on two cores)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100}"
PY="${PYTHON:-.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
count() {  # phase -> total instructions (Ir) of one run under callgrind
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$work/$1.out" \
        "$PY" -m bench.instructions "$1" "$N" "$work/$1.db" >/dev/null 2>"$work/$1.log" \
        || { cat "$work/$1.log" >&2; exit 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$work/$1.out" >"$work/$1.ir"
}
count open & count begin & wait
count sign & count settle & wait
open=$(cat "$work/open.ir"); begin=$(cat "$work/begin.ir")
sign=$(cat "$work/sign.ir"); settle=$(cat "$work/settle.ir")
echo "instructions per begin   $(( (begin - open) / N ))"
echo "instructions per settle  $(( (settle - sign) / N ))"
