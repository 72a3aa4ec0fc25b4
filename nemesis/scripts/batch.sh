#!/usr/bin/env bash
# Repeated nemesis runs for BENCHMARKS.md ("Nemesis runs"): one line per run with the bug
# switch, seed, verdict and what found it.
#   usage: nemesis/scripts/batch.sh RUNS SECONDS BUG|none [extra nemesis flags...]
# Uses $NEMESIS (default target/release/nemesis), which finds the cluster binary beside it.
# Seeds are SEED_BASE+1 .. SEED_BASE+RUNS (SEED_BASE defaults to 1000).
set -u
runs=$1 secs=$2 bug=$3
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BATCH_DIR:-/tmp/nemesis-batch}
mkdir -p "$out"
bugflag=()
[ "$bug" != none ] && bugflag=(--bug "$bug")
for i in $(seq 1 "$runs"); do
  seed=$((${SEED_BASE:-1000} + i))
  dir="$out/$bug-$seed"
  rm -rf "$dir"
  "${NEMESIS:-$root/target/release/nemesis}" --time-limit "$secs" --seed "$seed" --run-dir "$dir" \
    "${bugflag[@]}" "$@" >"$dir.out" 2>&1
  code=$?
  python3 - "$dir/results.json" "$bug" "$seed" "$code" <<'PY'
import json, sys
path, bug, seed, code = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{bug} seed {seed} exit {code} no results ({e})"); sys.exit()
ops = r["stats"]["operations"]
lin = r["linearizability"]["verdict"]
an = r.get("append") or {}
kinds = sorted({a["kind"] for a in an.get("anomalies", [])})
print(f"{bug} seed {seed} exit {code} verdict {r['verdict']} ops {ops} linearizability {lin} "
      f"acked {an.get('acknowledged', '-')} anomalies {len(an.get('anomalies', []))} {','.join(kinds)}")
PY
done
