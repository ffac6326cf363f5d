"""``python -m collector run`` started as a user starts it and watched while it runs, so a test
waits for what the job says it did (its first training, a second one) instead of a count of
one-second steps that a slow or emulated machine does not meet."""
import re
import signal
import subprocess
import sys
import threading
import time

from conftest import ROOT


class LiveJob:
    """The job runs until ``stop``; its stdout and stderr are read as they come."""

    def __init__(self, host, config=None, timeout=240):
        cmd = [sys.executable, '-m', 'collector', 'run', '--host', host, '--update-every', '1']
        if config:
            cmd += ['--config', str(config)]
        self.timeout = timeout
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._out, self._err = [], []
        self._blocks = {}   # chart -> charted steps so far (a BEGIN ... END block each)
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self._readers:
            t.start()

    def _read(self, stream, lines):
        chart = None
        for line in stream:
            with self._changed:
                lines.append(line)
                if lines is self._out:
                    if line.startswith('BEGIN '):
                        chart = line.split()[1]
                    elif line.strip() == 'END' and chart:
                        self._blocks[chart] = self._blocks.get(chart, 0) + 1
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait(self, done, what):
        deadline = time.monotonic() + self.timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    break
                self._changed.wait(min(left, 1.0))
            else:
                return
        self.stop()
        raise AssertionError('{} not seen in {} s (exit code {}); stderr:\n{}'.format(
            what, self.timeout, self.proc.returncode, self.stderr))

    def wait_for(self, pattern, count=1):
        """Until the job's log has matched ``pattern`` ``count`` times."""
        self._wait(lambda: len(re.findall(pattern, ''.join(self._err))) >= count,
                   '{} x {!r} in the log'.format(count, pattern))

    def wait_charted(self, chart, count):
        """Until ``chart`` has been updated ``count`` times in all."""
        self._wait(lambda: self._blocks.get(chart, 0) >= count, '{} updates of {}'.format(count, chart))

    def stop(self):
        """SIGTERM, as an agent stops its plugins; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(timeout=10)
        return self.proc.returncode

    @property
    def returncode(self):
        return self.proc.returncode

    @property
    def stdout(self):
        """What was written to stdout, up to the last whole step (a SIGTERM may cut one short)."""
        with self._changed:
            text = ''.join(self._out)
        end = text.rfind('\nEND\n')
        return text[:end + 5] if end >= 0 else ''

    @property
    def stderr(self):
        with self._changed:
            return ''.join(self._err)
