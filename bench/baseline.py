"""The retired collector's way of working, as a benchmark baseline (not used by the product).

Per step it does what the retired python.d ``anomalies`` module did, as documented: read the
latest values through netdata-pandas' allmetrics into a wide pandas frame, append it to a
frame of recent rows, build each chart's diff/smooth/lag features with pandas, and call the
chart's pyod model ``predict_proba`` and ``predict``; every ``train_every_n`` steps it
fetches the training window with netdata-pandas ``get_data`` and fits every model, inside the
collection step. It prints one line per step (``STEP <monotonic> <cpu-seconds of the
step> <train|predict>``) and ``PRED <monotonic>`` at its first real prediction; the benchmark
reads those.

    python bench/baseline.py --host 127.0.0.1:19999 --charts-regex 'system\\..*' --steps 60
"""
import argparse
import re
import sys
import time
import warnings


def features(df, diffs_n, smooth_n, lags_n):
    """pandas diff -> rolling mean -> lags, as a frame per chart (the old per-step path)."""
    import pandas as pd
    if diffs_n > 0:
        df = df.diff(diffs_n).dropna()
    if smooth_n > 1:
        df = df.rolling(smooth_n).mean().dropna()
    if lags_n > 0:
        df = pd.concat([df] + [df.shift(n).add_suffix('_lag{}'.format(n)) for n in range(1, lags_n + 1)],
                       axis=1).dropna()
    return df


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--host', required=True)
    p.add_argument('--charts-regex', default=r'system\..*')
    p.add_argument('--model', default='pca')
    p.add_argument('--steps', type=int, default=60)
    p.add_argument('--train-n-secs', type=int, default=600)
    p.add_argument('--train-every-n', type=int, default=1800)
    p.add_argument('--contamination', type=float, default=0.001)
    p.add_argument('--lags-n', type=int, default=5)
    p.add_argument('--smooth-n', type=int, default=3)
    p.add_argument('--diffs-n', type=int, default=1)
    args = p.parse_args()
    warnings.simplefilter('ignore')
    import numpy as np
    import pandas as pd
    from netdata_pandas.data import get_allmetrics_async, get_chart_list, get_data
    sys.path.insert(0, __file__.rsplit('/bench/', 1)[0])
    from collector.models import build_estimator

    out = sys.stdout
    rx = re.compile(args.charts_regex)
    charts = [c for c in get_chart_list(args.host) if rx.match(c)]
    host_charts = {args.host: charts}
    need = args.diffs_n + args.smooth_n + args.lags_n
    models, columns = {}, {}
    recent = None
    predicted = False
    for step in range(args.steps):
        now = time.time()
        time.sleep(1.0 - (now % 1.0))
        started_cpu = time.process_time()
        kind = 'predict'
        if step % args.train_every_n == 0:
            kind = 'train'
            df = get_data(host_charts_dict=host_charts, host_prefix=True, host_sep='::', after=-args.train_n_secs,
                          before=0, points=0)
            for chart in charts:
                cols = [c for c in df.columns if c.split('::', 1)[1].split('|')[0] == chart]
                X = features(df[cols], args.diffs_n, args.smooth_n, args.lags_n).values
                model = build_estimator(args.model, args.contamination)
                try:
                    model.fit(X)
                except Exception:
                    continue
                models[chart], columns[chart] = model, cols
        latest = get_allmetrics_async(host_charts_dict=host_charts, host_prefix=True, host_sep='::', wide=True,
                                      sort_cols=True)
        recent = latest if recent is None else pd.concat([recent, latest]).tail(need + 1)
        if kind == 'predict' and recent is not None and len(recent) > need:
            for chart, model in models.items():
                cols = [c for c in columns[chart] if c in recent.columns]
                if len(cols) != len(columns[chart]):
                    continue
                X = features(recent[cols], args.diffs_n, args.smooth_n, args.lags_n).values
                try:  # pyod PCA scores inf on constant columns and then raises: keep the last values
                    prob = np.nan_to_num(model.predict_proba(X)[-1][1]) * 10000
                    flag = model.predict(X)[-1]
                    del prob, flag
                except ValueError:
                    pass
            if not predicted and models:
                predicted = True
                out.write('PRED {:.3f}\n'.format(time.monotonic()))
        out.write('STEP {:.3f} {:.6f} {}\n'.format(time.monotonic(), time.process_time() - started_cpu, kind))
        out.flush()


if __name__ == '__main__':
    main()
