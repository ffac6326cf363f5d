"""The job's process keeps to one BLAS thread: its steps score a row per model, and OpenBLAS's
threads spin after each call of a wide chart's model."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the process's threads before numpy, then after a wide chart's model is scored as a step scores
# it (120 dimensions, 840 features): the threads BLAS added (an emulator may run one of its own)
SCRIPT = """
def threads():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('Threads'))
before = threads()
import collector.batch
import numpy as np
components = np.random.default_rng(0).normal(size=(840, 840))
for _ in range(20):
    np.random.default_rng(1).normal(size=(1, 840)) @ components.T
print(threads() - before)
"""


def threads_added_by_scoring(**env):
    environ = {k: v for k, v in os.environ.items() if not k.endswith('_NUM_THREADS')}
    environ.update(env, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, env=environ, cwd=ROOT,
                         check=True).stdout
    return int(out.strip())


@pytest.mark.skipif(not os.path.exists('/proc/self/status') or (os.cpu_count() or 1) < 2,
                    reason='threads read from /proc; one CPU starts no BLAS thread anyway')
def test_the_job_process_scores_in_one_thread():
    assert threads_added_by_scoring() == 0
    # a value given in the environment stands
    assert threads_added_by_scoring(OPENBLAS_NUM_THREADS='2', OMP_NUM_THREADS='2') == 1
