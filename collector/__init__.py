"""ML anomaly detection for Netdata charts, as a python.d module and a standalone plugin."""
import os

__version__ = '0.1.0'

# one BLAS thread, set before numpy is first imported (a value given in the environment stands):
# a step scores a row per model, which a second thread never speeds up, and OpenBLAS keeps its
# threads spinning after each call of a wide chart's model (a 120-dimension chart took a step's
# CPU from 0.002 to 0.055 s); the training process is started with the same (trainers._child_env)
BLAS_THREADS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
for _name in BLAS_THREADS:
    os.environ.setdefault(_name, '1')
