# -*- coding: utf-8 -*-
# Description: ML anomaly detection for Netdata charts (python.d module)
# SPDX-License-Identifier: GPL-3.0-or-later
"""python.d module ``anomalies``: per-chart anomaly probability and anomaly flag charts.

python.d.plugin loads this file; the work is done by the ``collector`` package. That
package and its dependencies live in a virtual environment named in ``anomalies.venv``
beside this file (written by install.sh), or next to this file's real location (a
checkout).
"""
import glob
import os
import sys


# python.d.plugin runs every module in one process: Netdata's own modules (UrlService) use the
# system's or python.d's HTTP stack, which the venv's newer copies must not replace
_SHARED = frozenset(('urllib3', 'requests', 'certifi', 'idna', 'charset_normalizer', 'chardet'))


class _OwnPackagesFirst(object):
    """Finds every package the venv (or checkout) has there first, but the HTTP stack that
    other modules share, so numpy, pandas, scikit-learn and pyod match each other whatever
    the system has installed. The venv is appended to sys.path, not put in front of it."""

    def __init__(self, paths):
        self.paths = paths

    def find_spec(self, name, path=None, target=None):
        if path is not None or name in _SHARED:
            return None
        from importlib.machinery import PathFinder
        return PathFinder.find_spec(name, self.paths)


def _add_paths():
    """Where the package is looked for; the virtual environment named, if any."""
    here = os.path.dirname(os.path.realpath(__file__))
    candidates = [here]
    venv = os.environ.get('NETDATA_ANOMALIES_VENV')
    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'anomalies.venv')
    if not venv and os.path.isfile(marker):
        with open(marker) as f:
            venv = f.read().strip()
    if venv:
        pattern = os.path.join(venv, 'lib', 'python{}.{}'.format(*sys.version_info[:2]), 'site-packages')
        candidates = glob.glob(pattern) + candidates
    if not any(isinstance(f, _OwnPackagesFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _OwnPackagesFirst(candidates))
    for path in candidates:
        if path not in sys.path:
            sys.path.append(path)
    return venv


_VENV = _add_paths()


try:
    try:  # under python.d.plugin
        from bases.FrameworkServices.SimpleService import SimpleService
    except ImportError:  # standalone
        from collector.pythond import SimpleService
    from collector.service import CHARTS, ORDER, AnomaliesService
except ImportError as e:   # python.d logs only 'error on loading source' and the exception: say what to do
    raise ImportError('{} (python {}.{}, {}); run install.sh again'.format(
        e, sys.version_info[0], sys.version_info[1],
        'virtual environment {}: missing, or made for another python'.format(_VENV) if _VENV else
        'no virtual environment named beside the module'))

# like the retired module: runs only when python.d.conf says 'anomalies: yes'
disabled_by_default = True
# no growing delay after failed updates: the job handles an absent agent itself (logs once,
# retries cheaply) and must not slow down while it waits for its first training
penalty = False

__all__ = ['Service', 'ORDER', 'CHARTS']


class Service(AnomaliesService, SimpleService):
    """Anomaly probability and flag charts from ML models over this node's charts."""
