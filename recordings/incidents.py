"""Labeled incidents against a running Netdata agent, one at a time, for an evaluation recording.

Waits until ``--first`` (unix time), then runs a CPU stress, a memory stress, disk I/O,
loopback network traffic and a fork storm, ``--gap`` seconds of quiet after each, and writes
labels.json (the format of ``python -m collector record --labels``) after every incident.
The expected charts are those of ../shared/recordings/netdata-1.37-incidents-a for the same
kinds. ``--plan other`` runs five other kinds instead (one busy core, context switches,
buffered writes, UDP on loopback, a timer storm), with the charts their load goes through.
Needs stress-ng and curl; run as root beside the agent:

    python3 recordings/incidents.py --first $(( $(date +%s) + 4800 )) --gap 600 --labels /tmp/labels.json
"""
import argparse
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
}


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
    p.add_argument('--plan', choices=('first', 'other'), default='first', help='which five kinds of incident')
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix='incidents')
    if args.plan == 'first':     # served by the loopback incident (deleted at the end: disk I/O)
        with open(os.path.join(tmp, 'blob.bin'), 'wb') as f:
            f.write(os.urandom(256 << 20))
    plan = [
        ('cpu-stress', ['stress-ng', '--cpu', '2', '--timeout', '60s']),
        ('memory-stress', ['stress-ng', '--vm', '1', '--vm-bytes', '3G', '--vm-keep', '--timeout', '60s']),
        ('disk-io', ['stress-ng', '--hdd', '1', '--hdd-bytes', '1G', '--hdd-opts', 'direct', '--temp-path', tmp,
                     '--timeout', '60s']),
        ('network-loopback-bulk', None),
        ('fork-storm', ['stress-ng', '--fork', '2', '--timeout', '40s']),
    ] if args.plan == 'first' else [
        ('cpu-one-core', ['stress-ng', '--cpu', '1', '--timeout', '60s']),
        ('context-switches', ['stress-ng', '--switch', '1', '--timeout', '45s']),
        ('buffered-writes', ['stress-ng', '--hdd', '1', '--hdd-bytes', '1G', '--temp-path', tmp, '--timeout', '60s']),
        ('udp-loopback', ['stress-ng', '--udp', '1', '--timeout', '45s']),
        ('timer-storm', ['stress-ng', '--timer', '1', '--timer-freq', '100000', '--timeout', '45s']),
    ]
    labels = {'incidents': [], 'notes': 'Incidents one at a time with {:.0f} s of quiet after each; start/end '
              'are wall-clock seconds taken just before the load started and just after it ended.'.format(args.gap)}
    t = args.first
    try:
        for kind, cmd in plan:
            while time.time() < t:
                time.sleep(min(5, t - time.time()))
            start = math.floor(time.time())
            if cmd is None:
                loopback(tmp)
                command = 'python3 -m http.server 18081 --bind 127.0.0.1 & timeout 60 curl loop on a 256 MiB file'
            else:
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                command = ' '.join(cmd)
            end = math.ceil(time.time())
            labels['incidents'].append({'kind': kind, 'start': start, 'end': end, 'command': command,
                                        'expected_charts': EXPECTED[kind]})
            with open(args.labels, 'w') as f:
                json.dump(labels, f, indent=1)
            print(kind, start, end, flush=True)
            t = end + args.gap
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
