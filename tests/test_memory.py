"""The memory a job's threads free is given back to the system after each training."""
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a thread (as a training's result is read in) allocates 120 MB in small pieces and keeps one in
# a hundred: glibc keeps the rest in that thread's arena, resident, until it is asked for it
SCRIPT = """
import gc, threading
from collector import memory

def rss_mib():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith('VmRSS'))

kept = []
def work():
    pieces = [bytes(2000) for _ in range(60000)]
    kept.extend(pieces[::100])
thread = threading.Thread(target=work)
thread.start()
thread.join()
gc.collect()
before = rss_mib()
asked = memory.give_back()
print(before, rss_mib(), asked)
"""


@pytest.mark.skipif(not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc',
                    reason='malloc_trim is glibc\'s')
def test_memory_a_thread_freed_is_given_back_to_the_system():
    out = subprocess.run([sys.executable, '-c', SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after, asked = out.stdout.split()
    assert asked == 'True'
    assert int(before) > 100 and int(after) < int(before) / 2, out.stdout

