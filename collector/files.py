"""Writing files so that a reader never sees half of one."""
import os
import tempfile

TEMP_PREFIX = '.anomalies-'   # the temporary files' names start so (see persist.prune)


def write_atomically(path, data, mode=0o644):
    """Write ``data`` (bytes) to a temporary file beside ``path`` and rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            # the file this wrote, not whatever is at its name by now: in a folder its group may
            # write (the agent's), a link put there would give its mode to the file it names
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
