#!/usr/bin/env bash
# The benchmark matrix of docs/performance.md: the default model at 37, 100 and 300 charts (60 s
# each, beside the baseline's pca), then every other model at 37 charts (MODEL_SECONDS, 60 s by
# default, beside the baseline running the same pyod model; 30 s leave some models only 2-3
# prediction steps to measure between their trainings). Figures go to stdout and OUT/*.json.
#   MODEL_SIZES="37 100 300" bench/matrix.sh    # every model at each of these sizes
#   SKIP_DEFAULT=1 MODEL_SIZES="100 300" bench/matrix.sh
#   SKIP_DEFAULT=1 MODELS="ecod copod" MODEL_SIZES=300 MODEL_SECONDS=90 bench/matrix.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv/bin/python"   # the checkout's venv, else the active one
py="${PYTHON:-$([ -x "$venv" ] || [ -z "${VIRTUAL_ENV:-}" ] && echo "$venv" || echo "$VIRTUAL_ENV/bin/python")}"
command -v "$py" >/dev/null || { echo "matrix.sh: no $py: ./install.sh --dev, or PYTHON=..." >&2; exit 2; }
out="${OUT:-$here/results}"
models="${MODELS:-pca hbos iforest cblof loda copod ecod gmm knn feature_bagging}"
mkdir -p "$out"
default="$(cd "$here/.." && "$py" -c 'from collector.config import DEFAULTS; print(DEFAULTS["model"])')"
# every run's arguments checked first (a model name, a recording with too few charts), so that
# the matrix does not stop on one after half an hour
[ -n "${SKIP_DEFAULT:-}" ] || "$py" "$here/run.py" --charts 300 --check
for n in ${MODEL_SIZES:-37}; do
  for m in $models; do
    "$py" "$here/run.py" --charts "$n" --model "$m" --seconds "${MODEL_SECONDS:-60}" --check
  done
done
if [ -z "${SKIP_DEFAULT:-}" ]; then
  for n in 37 100 300; do
    echo "=== $n charts, $default (the default)"
    "$py" "$here/run.py" --charts "$n" --seconds 60 --json "$out/$default-$n.json"
  done
fi
for n in ${MODEL_SIZES:-37}; do
  for m in $models; do
    echo "=== $n charts, $m"
    "$py" "$here/run.py" --charts "$n" --model "$m" --seconds "${MODEL_SECONDS:-60}" --json "$out/$m-$n.json"
  done
done
