"""What the benchmark scripts share: the Python they need, and a one-line stop on Ctrl-C.

Imported first by each script: its check of this Python's libraries runs on import, before
the script's own imports of numpy or the collector would fail with a traceback."""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what the runs import, the job's training and the retired collector's baseline alike
NEEDED = ('numpy', 'pandas', 'sklearn', 'pyod', 'yaml')


def require(modules=NEEDED):
    """Exit with one line naming what this Python lacks: started with a system ``python3``
    rather than the project's venv, a benchmark's training failed at every retry (and one
    waited for a model for ever) instead of saying so."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        script = sys.argv[0] if sys.argv and sys.argv[0] else 'bench'
        venv = os.path.relpath(os.path.join(ROOT, '.venv', 'bin', 'python'))
        sys.exit("{}: this Python ({}) has no {}: run it with the project's venv, {} {} (./install.sh --dev "
                 "makes it)".format(os.path.basename(script), sys.executable, ', '.join(missing), venv, script))


def run_main(main):
    """``main()`` as the script's exit status; Ctrl-C ends it with one line, not a traceback
    (each script's own ``finally`` clauses have stopped its replays and jobs by then)."""
    try:
        status = main()
    except KeyboardInterrupt:
        print('\n{}: interrupted'.format(os.path.basename(sys.argv[0] or 'bench')), file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


require()
