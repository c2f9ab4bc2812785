#!/usr/bin/env bash
# Runs every bench script with --smoke (tiny sizes, the same code) so a bench cannot rot unseen: fails when one
# crashes (a nonzero exit) or prints no figures, and names it.
#
#   bench/smoke.sh [DIR | SCRIPT...]      default: every bench/*.py; a name starting with _ is a helper, not a bench
#
# A figure is a row of a Markdown table on standard output that holds a number: a line starting with "|" with a
# digit in it (header rows name their columns without digits). Every bench prints its results that way, ready for
# the README. No timing is asserted: BENCH_SMOKE_TIMEOUT (seconds, default 600) only stops a bench that hangs.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${BENCH_PYTHON:-$root/.venv/bin/python}
limit=${BENCH_SMOKE_TIMEOUT:-600}

if [ $# -eq 0 ]; then
  set -- "$root/bench"
fi
if [ $# -eq 1 ] && [ -d "$1" ]; then
  set -- "$1"/*.py
fi
scripts=()
for script in "$@"; do
  case $(basename "$script") in _*) continue ;; esac
  [ -f "$script" ] && scripts+=("$script")
done
if [ ${#scripts[@]} -eq 0 ]; then
  echo "bench smoke: no bench scripts in $*" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
seconds_since() {  # "12.3", from a start time in microseconds
  local tenths=$(((${EPOCHREALTIME/./} - $1) / 100000))
  echo "$((tenths / 10)).$((tenths % 10))"
}

failed=()
summary=()
total_start=${EPOCHREALTIME/./}
for script in "${scripts[@]}"; do
  name=$(basename "$script")
  echo "=== $name --smoke"
  start=${EPOCHREALTIME/./}
  timeout "$limit" "$python" "$script" --smoke | tee "$out"
  status=${PIPESTATUS[0]}
  took=$(seconds_since "$start")
  if [ "$status" -ne 0 ]; then
    problem="exit $status"
  elif ! grep -q '^|.*[0-9]' "$out"; then
    problem="no figures: no Markdown table row with a number"
  else
    problem=""
  fi
  [ -z "$problem" ] || failed+=("$name ($problem)")
  summary+=("$(printf '%-20s %6s s  %s' "$name" "$took" "${problem:+FAILED, }${problem:-ok}")")
done

echo "=== bench smoke: $(seconds_since "$total_start") s in all"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  printf -v list '%s; ' "${failed[@]}"
  echo "bench smoke failed: ${list%; }" >&2
  exit 1
fi
