#!/usr/bin/env bash
# Instructions per begin and per settle, counted by valgrind's callgrind (repeatable on a
# noisy machine, unlike time): four runs of `bench.instructions`, each phase adding one
# part of the workload, and the differences divided by N.
#   bench/callgrind.sh [N] [--objects]   (default N=100; about three minutes on two cores)
# --objects also prints, per begin and per settle, the instructions each component spent
# (the interpreter, SQLite, the sqlite3 binding, msgspec, hashing, libc).
set -euo pipefail
cd "$(dirname "$0")/.."
N=100 OBJECTS=0
for arg in "$@"; do
    case "$arg" in
        --objects) OBJECTS=1 ;;
        *) N="$arg" ;;
    esac
done
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
if [ "$OBJECTS" = 1 ]; then
    echo "-- per begin, by component"
    "$PY" -m bench.callgrind_objects "$work/open.out" "$work/begin.out" "$N"
    echo "-- per settle, by component"
    "$PY" -m bench.callgrind_objects "$work/sign.out" "$work/settle.out" "$N"
fi
