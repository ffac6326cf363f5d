#!/usr/bin/env bash
# Every supported model (and an ensemble) under the default features and flag policy, on the
# labeled data in ../shared: SMD mean row, NAB mean row, the shared recording (warmup 420 s,
# so that more clean time is evaluated). Usage: bench/models.sh [model ...]   (~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's venv, else the active one
PY=${PYTHON:-$([ -x .venv/bin/python ] || [ -z "${VIRTUAL_ENV:-}" ] && echo .venv/bin/python || echo "$VIRTUAL_ENV/bin/python")}
command -v "$PY" >/dev/null || { echo "models.sh: no $PY: ./install.sh --dev, or PYTHON=..." >&2; exit 2; }
SHARED=${SHARED:-../shared}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mahalanobis pca hbos iforest cblof loda copod ecod gmm knn feature_bagging mahalanobis+knn pca+knn)
# every name checked first, so that a typo at the end of the list does not stop it minutes in
for m in "${models[@]}"; do
  "$PY" -m collector check-config /dev/stdin <<<"anomalies: {model: '$m'}" >/dev/null || exit 2
done
printf '%-16s %8s %8s %8s %8s   %8s %8s %8s   %s\n' model smd_roc smd_pr smd_bf1 smd_ff1 nab_roc nab_pr nab_ff1 recording
for m in "${models[@]}"; do
  smd=$($PY -m collector evaluate --dataset "$SHARED"/datasets/smd/machine-* --set "model=$m" | awk '$1=="mean"{print $2, $3, $4, $5}')
  nab=$($PY -m collector evaluate --dataset "$SHARED"/datasets/nab/* --set "model=$m" | awk '$1=="mean"{print $2, $3, $5}')
  rec=$($PY -m collector evaluate "$SHARED"/recordings/netdata-1.37-incidents-a --quiet --warmup 420 --set "model=$m" \
        | awk '/^detected/{sub(/;.*:/, ""); print}' | sed 's/detected //')
  # shellcheck disable=SC2086
  printf '%-16s %8s %8s %8s %8s   %8s %8s %8s   %s\n' "$m" $smd $nab "$rec"
done
