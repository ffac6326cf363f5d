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


def may_write_into(folder, user=None):
    """Whether ``user`` (a name; None: this process) may create files in ``folder``.

    By the folder's owner, group and mode bits, so that root (``install.sh --check``) can answer
    for the agent's user, for whom ``os.access`` cannot be asked; ACLs are not read.
    """
    if user is None:
        return os.access(folder, os.W_OK | os.X_OK)
    import grp
    import pwd
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        return True
    st = os.stat(folder)
    if st.st_uid == entry.pw_uid:
        shift = 6
    elif st.st_gid in os.getgrouplist(user, entry.pw_gid) or user in _members(grp, st.st_gid):
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & 0o3 == 0o3


def _members(grp, gid):
    """The user names of group ``gid``; none for a gid without a name (a folder mounted from a
    container or NFS), which the user's own groups then decide alone."""
    try:
        return grp.getgrgid(gid).gr_mem
    except KeyError:
        return []
