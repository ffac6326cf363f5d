"""Labeled incidents against a running Netdata agent, one at a time, for an evaluation recording.

Waits until ``--first`` (unix time), then runs a CPU stress, a memory stress, disk I/O,
loopback network traffic and a fork storm, ``--gap`` seconds of quiet after each, and writes
labels.json (the format of ``python -m collector record --labels``) after every incident.
The expected charts are those of ../shared/recordings/netdata-1.37-incidents-a for the same
kinds. ``--plan other`` runs five other kinds instead (one busy core, context switches,
buffered writes, UDP on loopback, a timer storm), with the charts their load goes through;
``--plan mild`` five milder ones (half a core, memory taken a little at a time, processes
left sleeping one by one, System V IPC objects, direct reads of a file), ``--plan more`` five
more (zombie processes, TCP connections on loopback, page faults, System V messages, a file
synced over and over). ``--only`` runs some kinds of the plan (``--only cpu-stress,fork-storm``).
Needs stress-ng and curl; run as root beside the agent:

    python3 recordings/incidents.py --first $(( $(date +%s) + 4800 )) --gap 600 --labels /tmp/labels.json
"""
import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

EXPECTED = {
    'cpu-stress': ['system.cpu', 'cpu.cpu0', 'cpu.cpu1', 'system.load', 'system.cpu_some_pressure',
        'system.processes_state', 'apps.cpu', 'groups.cpu', 'users.cpu'],
    'memory-stress': ['system.ram', 'mem.available', 'mem.committed', 'mem.pgfaults', 'system.cpu', 'apps.mem',
        'groups.mem', 'users.mem', 'apps.vmem', 'apps.minor_faults'],
    'disk-io': ['disk.vda', 'disk_ops.vda', 'disk_util.vda', 'disk_busy.vda', 'disk_await.vda',
        'disk_iotime.vda', 'disk_backlog.vda', 'system.io', 'system.cpu', 'system.io_some_pressure',
        'apps.preads', 'apps.pwrites'],
    'network-loopback-bulk': ['system.ip', 'ipv4.packets', 'ipv4.tcppackets', 'system.softirqs',
        'cpu.cpu0_softirqs', 'cpu.cpu1_softirqs', 'system.cpu', 'ipv4.tcpopens', 'apps.cpu'],
    'fork-storm': ['system.forks', 'system.processes', 'system.active_processes', 'system.ctxt', 'system.cpu',
        'mem.pgfaults', 'apps.processes', 'system.processes_state'],
    # --plan other
    'cpu-one-core': ['system.cpu', 'cpu.cpu0', 'cpu.cpu1', 'system.load', 'system.processes_state', 'apps.cpu'],
    'context-switches': ['system.ctxt', 'system.cpu', 'system.processes_state', 'apps.cpu'],
    'buffered-writes': ['system.io', 'system.pgpgio', 'system.ram', 'system.cpu', 'system.io_some_pressure',
        'disk.vda', 'disk_ops.vda', 'mem.writeback', 'apps.pwrites'],
    'udp-loopback': ['system.ip', 'system.softirqs', 'system.ctxt', 'system.cpu', 'ipv4.udppackets',
        'cpu.cpu0_softirqs', 'cpu.cpu1_softirqs'],
    'timer-storm': ['system.interrupts', 'system.intr', 'system.softirqs', 'system.ctxt', 'system.cpu'],
    # --plan mild
    'cpu-half-core': ['system.cpu', 'cpu.cpu0', 'cpu.cpu1', 'system.load', 'system.cpu_some_pressure',
        'system.processes_state', 'apps.cpu'],
    'memory-ramp': ['system.ram', 'mem.available', 'mem.committed', 'apps.mem'],
    'process-leak': ['system.active_processes', 'system.forks', 'system.processes', 'system.ctxt', 'apps.processes'],
    'ipc-objects': ['system.shared_memory_segments', 'system.shared_memory_bytes', 'system.ipc_semaphore_arrays',
        'system.ipc_semaphores'],
    'direct-reads': ['system.io', 'system.pgpgio', 'system.io_some_pressure', 'system.io_full_pressure',
        'system.cpu', 'disk.vda', 'disk_ops.vda'],
    # --plan more
    'zombie-processes': ['system.processes_state', 'system.active_processes', 'system.forks', 'system.processes',
        'system.ctxt', 'system.cpu', 'apps.processes'],
    'tcp-connections': ['system.ip', 'system.softirqs', 'system.ctxt', 'system.cpu', 'ipv4.tcpsock',
        'ipv4.tcpopens', 'ipv4.packets', 'ipv4.tcppackets', 'ipv4.sockstat_tcp_sockets', 'apps.cpu'],
    'page-faults': ['system.cpu', 'mem.pgfaults', 'apps.minor_faults', 'apps.cpu'],
    'sysv-messages': ['system.ctxt', 'system.cpu', 'system.processes_state', 'apps.cpu'],
    'sync-storm': ['system.io', 'system.pgpgio', 'system.io_some_pressure', 'system.io_full_pressure',
        'system.processes', 'system.processes_state', 'system.cpu', 'disk.vda', 'disk_ops.vda', 'mem.writeback'],
}

MEMORY_RAMP = '''
import time
held = []
for _ in range(60):
    held.append(bytearray(16 << 20))      # 16 MiB a second, touched (zero-filled)
    time.sleep(1)
'''


def memory_ramp():
    """Takes 16 MiB more every second for 60 s (960 MiB in all), then lets it all go."""
    subprocess.run([sys.executable, '-c', MEMORY_RAMP])


def process_leak():
    """Leaves a sleeping process behind every 0.25 s for 60 s (240 in all), then ends them."""
    children = []
    try:
        for _ in range(240):
            children.append(subprocess.Popen(['sleep', '300']))
            time.sleep(0.25)
    finally:
        for c in children:
            c.kill()
            c.wait()


def ipc_objects():
    """Eight 64 MiB System V shared memory segments and eight semaphore sets held for 45 s."""
    made = []
    try:
        for _ in range(8):
            for kind in ('-M', '-S'):
                out = subprocess.run(['ipcmk', kind, '64M' if kind == '-M' else '4'], capture_output=True,
                                     text=True).stdout
                made.append(('-m' if kind == '-M' else '-s', out.split()[-1]))
        time.sleep(45)
    finally:
        for flag, ident in made:
            subprocess.run(['ipcrm', flag, ident])


def direct_reads(tmp):
    """Reads a 256 MiB file over and over with direct I/O (no page cache) for 60 s."""
    subprocess.run(['timeout', '60', 'bash', '-c', 'while :; do dd if={}/blob.bin of=/dev/null bs=1M '
                    'iflag=direct status=none; done'.format(tmp)])


def loopback(tmp):
    """A local HTTP server and a download loop on 127.0.0.1 for 60 s (about 10 Gbit/s here)."""
    server = subprocess.Popen([sys.executable, '-m', 'http.server', '18081', '--bind', '127.0.0.1'], cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run(['timeout', '60', 'bash', '-c',
                        'while :; do curl -s -o /dev/null http://127.0.0.1:18081/blob.bin; done'])
    finally:
        server.kill()
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--first', type=float, required=True, help='unix time of the first incident')
    p.add_argument('--gap', type=float, default=600, help='seconds of quiet after each incident')
    p.add_argument('--labels', required=True, help='labels.json to write')
    p.add_argument('--plan', choices=('first', 'other', 'mild', 'more'), default='first', help='which five kinds of incident')
    p.add_argument('--only', help="comma-separated kinds of the plan to run, in the plan's order (default: all five)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix='incidents')
    plan = _plan(args.plan, tmp)
    if args.only:
        wanted = [k.strip() for k in args.only.split(',') if k.strip()]
        unknown = [k for k in wanted if k not in dict(plan)]
        if unknown or not wanted:
            shutil.rmtree(tmp, ignore_errors=True)
            p.error('--only: {} not in --plan {} (its kinds: {})'.format(
                ', '.join(unknown) or 'nothing', args.plan, ', '.join(k for k, _ in plan)))
        plan = [(k, cmd) for k, cmd in plan if k in wanted]
    if {'network-loopback-bulk', 'direct-reads'} & set(dict(plan)):   # the file they read (deleted at the end)
        with open(os.path.join(tmp, 'blob.bin'), 'wb') as f:
            f.write(os.urandom(256 << 20))
    labels = {'incidents': [], 'notes': 'Incidents one at a time with {:.0f} s of quiet after each; start/end '
              'are wall-clock seconds taken just before the load started and just after it ended.'.format(args.gap)}
    t = args.first
    try:
        for kind, cmd in plan:
            t = _run_incident(kind, cmd, t, tmp, labels, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plan(name, tmp):
    """The five ``(kind, command)`` of a plan: an argv, a function, or None (the loopback transfer)."""
    return [
        ('cpu-stress', ['stress-ng', '--cpu', '2', '--timeout', '60s']),
        ('memory-stress', ['stress-ng', '--vm', '1', '--vm-bytes', '3G', '--vm-keep', '--timeout', '60s']),
        ('disk-io', ['stress-ng', '--hdd', '1', '--hdd-bytes', '1G', '--hdd-opts', 'direct', '--temp-path', tmp,
                     '--timeout', '60s']),
        ('network-loopback-bulk', None),
        ('fork-storm', ['stress-ng', '--fork', '2', '--timeout', '40s']),
    ] if name == 'first' else [
        ('cpu-half-core', ['stress-ng', '--cpu', '1', '--cpu-load', '50', '--timeout', '60s']),
        ('memory-ramp', memory_ramp),
        ('process-leak', process_leak),
        ('ipc-objects', ipc_objects),
        ('direct-reads', functools.partial(direct_reads, tmp)),
    ] if name == 'mild' else [
        ('zombie-processes', ['stress-ng', '--zombie', '1', '--zombie-max', '500', '--timeout', '45s']),
        ('tcp-connections', ['stress-ng', '--sock', '1', '--timeout', '60s']),
        ('page-faults', ['stress-ng', '--fault', '1', '--timeout', '60s']),
        ('sysv-messages', ['stress-ng', '--msg', '1', '--timeout', '45s']),
        ('sync-storm', ['stress-ng', '--sync-file', '1', '--temp-path', tmp, '--timeout', '60s']),
    ] if name == 'more' else [
        ('cpu-one-core', ['stress-ng', '--cpu', '1', '--timeout', '60s']),
        ('context-switches', ['stress-ng', '--switch', '1', '--timeout', '45s']),
        ('buffered-writes', ['stress-ng', '--hdd', '1', '--hdd-bytes', '1G', '--temp-path', tmp, '--timeout', '60s']),
        ('udp-loopback', ['stress-ng', '--udp', '1', '--timeout', '45s']),
        ('timer-storm', ['stress-ng', '--timer', '1', '--timer-freq', '100000', '--timeout', '45s']),
    ]


def _run_incident(kind, cmd, t, tmp, labels, args):
    """Wait until ``t``, run one incident, add it to labels.json (written after each); returns
    when the next may start."""
    while time.time() < t:
        time.sleep(min(5, t - time.time()))
    start = math.floor(time.time())
    if cmd is None:
        loopback(tmp)
        command = 'python3 -m http.server 18081 --bind 127.0.0.1 & timeout 60 curl loop on a 256 MiB file'
    elif callable(cmd):
        cmd()
        command = ' '.join(getattr(cmd, 'func', cmd).__doc__.split())
    else:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command = ' '.join(cmd)
    end = math.ceil(time.time())
    labels['incidents'].append({'kind': kind, 'start': start, 'end': end, 'command': command,
                                'expected_charts': EXPECTED[kind]})
    with open(args.labels, 'w') as f:
        json.dump(labels, f, indent=1)
    print(kind, start, end, flush=True)
    return end + args.gap


if __name__ == '__main__':
    main()
