#!/usr/bin/env bash
# The benchmark matrix of docs/performance.md: default model at 37, 100 and 300 charts (60 s
# each), then every model at 37 charts (30 s each). Figures go to stdout and OUT/*.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/../.venv/bin/python}"
out="${OUT:-$here/results}"
mkdir -p "$out"
for n in 37 100 300; do
  echo "=== $n charts, pca"
  "$py" "$here/run.py" --charts "$n" --seconds 60 --json "$out/pca-$n.json"
done
for m in hbos iforest cblof loda copod ecod gmm knn feature_bagging; do
  echo "=== 37 charts, $m"
  "$py" "$here/run.py" --charts 37 --model "$m" --quick --json "$out/$m-37.json"
done
