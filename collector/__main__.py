import os
import sys


def _fill_closed_std_fds():
    """A process started with stdin or stderr closed: /dev/null there, before any import, or
    the next file, socket or pipe opened takes that number, and the training process is
    started without a stderr and fails. (A closed stdout stays closed: ``run`` refuses to
    start without one.)"""
    for fd in (0, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:   # stdout was closed too, and took it: stdout stays closed
                os.dup2(opened, fd)
                os.close(opened)
            os.set_inheritable(fd, True)   # as a standard stream is: the training process gets it too


_fill_closed_std_fds()

from .cli import main  # noqa: E402

sys.exit(main())
