"""Child-process entry point of ``SubprocessTrainer``: a pickled request in, a pickled result out.

Stdout carries only the result; anything a library prints goes to stderr instead.
"""
import os
import pickle
import signal
import struct
import sys
import warnings


def _exit_with_parent(interval=1.0):
    """A job killed outright (SIGKILL, or python.d.plugin ending with its agent) cannot stop its
    training: the training stops itself, rather than spend a small box's CPU on a result that
    nobody will read. The job's pid comes on the command line: a job killed before this
    process got this far has already left it to another parent."""
    import threading
    import time
    try:
        parent = int(sys.argv[sys.argv.index('--parent') + 1])
    except (ValueError, IndexError):
        parent = os.getppid()
    if os.getppid() != parent:
        os._exit(0)

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


# the kernel's out-of-memory killer takes this process first (0 is every other process's, the
# agent's and the job's included): a training lost is retried later, the agent lost stops the
# node's monitoring, and on a small box the training, at 150 MiB, is not always the largest
OOM_SCORE_ADJ = 500


def _first_for_the_oom_killer(adj=OOM_SCORE_ADJ, path='/proc/self/oom_score_adj'):
    """Raise this process's ``oom_score_adj`` to ``adj`` (never lower it: a raise needs no
    privilege); where it cannot be read or written, the kernel chooses as it would."""
    try:
        with open(path) as f:
            now = int(f.read())
        if now < adj:
            with open(path, 'w') as f:
                f.write(str(adj))
    except (OSError, ValueError):
        pass


def main():
    _exit_with_parent()
    # Ctrl-C at a terminal reaches the whole process group: the parent that started this
    # training stops it (and says so in one line), not a traceback of this process's own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if '--nice' in sys.argv:
        try:
            os.nice(int(sys.argv[sys.argv.index('--nice') + 1]))
        except (OSError, ValueError, IndexError):
            pass
    _first_for_the_oom_killer()
    out = os.fdopen(os.dup(sys.stdout.fileno()), 'wb')
    # stray prints from libraries must not corrupt the result: Python's and C's (fd 1) alike
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr
    warnings.simplefilter('ignore')
    raw = sys.stdin.buffer.read()
    (size,) = struct.unpack('>Q', raw[:8])
    request = pickle.loads(raw[8:8 + size])
    import threading
    from collector.models import preload
    from collector.training import LESS_MEMORY, TrainingResult, run_training
    # pyod takes about a second to import: overlap it with the download of the window
    threading.Thread(target=preload, args=(request.config.model,), daemon=True).start()
    try:
        result = run_training(request)
    except MemoryError:
        result = TrainingResult(error='training ran out of memory (MemoryError): ' + LESS_MEMORY)
    except Exception as e:
        result = TrainingResult(error='training crashed: {!r}'.format(e))
    try:
        # written as it is pickled: a whole copy in memory first failed where the fit had just fit
        pickle.dump(result, out, protocol=4)
        out.close()
    except BrokenPipeError:   # the job stopped while this trained: nobody wants the result
        os._exit(0)   # an exit that would flush the closed pipe again prints a traceback
    # the result is out and the models saved: an interpreter's shutdown with pandas and
    # scikit-learn loaded is seconds of a niced process's time on a busy box, for nothing
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main()
