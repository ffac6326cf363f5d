"""Command line: ``python -m collector <command>``."""
import argparse
import sys


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be >= 1')
    return value


def cmd_run(args):
    from .config import ConfigError
    from .runner import run
    try:
        ok = run(args.config, args.job, args.host, args.update_every, args.steps)
    except ConfigError as e:
        for line in e.errors:
            print('configuration error, {}'.format(line), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0 if ok >= 0 else 1


def cmd_check_config(args):
    from .config import ConfigError, load_config_file, parse_job_config
    try:
        jobs = load_config_file(args.file)
    except ConfigError as e:
        for line in e.errors:
            print('{}: {}'.format(args.file, line), file=sys.stderr)
        return 1
    if not jobs:
        print('{}: defines no job'.format(args.file), file=sys.stderr)
        return 1
    bad = 0
    for name, raw in jobs.items():
        try:
            cfg = parse_job_config(raw, job_name=name)
        except ConfigError as e:
            bad += 1
            for line in e.errors:
                print('{}: job {}: {}'.format(args.file, name, line), file=sys.stderr)
            continue
        print('{}: job {}: ok (host {}, model {}, {} custom models)'.format(
            args.file, name, cfg.host, cfg.model, len(cfg.custom_models)))
    return 1 if bad else 0


def cmd_replay(args):
    import time
    from .replay import Recording, ReplayClock, ReplayServer
    rec = Recording(args.dir)
    start = rec.start + (args.start_offset if args.start_offset is not None else 0)
    clock = ReplayClock(start, speed=args.speed, stepped=args.step_mode)
    server = ReplayServer(rec, clock, port=args.port).start()
    print('replaying {} ({} charts, {}..{}) on http://{} at {}'.format(
        args.dir, len(rec.charts), rec.start, rec.end, server.host,
        'stepped clock (POST /replay/step?seconds=N)' if args.step_mode else '{}x speed'.format(args.speed)),
        file=sys.stderr, flush=True)
    try:
        while clock.now() <= rec.end or args.step_mode:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog='python -m collector',
                                description='ML anomaly detection for Netdata charts (python.d anomalies module).')
    sub = p.add_subparsers(dest='command', required=True)

    r = sub.add_parser('run', help='run a job standalone, writing the external plugin protocol to stdout')
    r.add_argument('--config', help='python.d style anomalies.conf (default: built-in defaults)')
    r.add_argument('--job', help='job name in the config (default: the first)')
    r.add_argument('--host', help="Netdata to read, e.g. 127.0.0.1:19999 or 'parent:19999/host/child'")
    r.add_argument('--update-every', type=_positive_int, help='seconds between steps')
    r.add_argument('--steps', type=_positive_int, help='stop after N steps (default: run forever)')
    r.set_defaults(func=cmd_run)

    c = sub.add_parser('check-config', help='validate a config file; non-zero exit with the reasons')
    c.add_argument('file')
    c.set_defaults(func=cmd_check_config)

    rp = sub.add_parser('replay', help='serve a recorded Netdata API on loopback')
    rp.add_argument('dir', help='recording folder')
    rp.add_argument('--port', type=int, default=19999)
    mode = rp.add_mutually_exclusive_group()
    mode.add_argument('--speed', type=float, default=1.0, help='clock speed (default 1 = real time)')
    mode.add_argument('--step-mode', action='store_true', help='clock moves only on POST /replay/step?seconds=N')
    rp.add_argument('--start-offset', type=int, help='seconds after the recording start where the clock starts')
    rp.set_defaults(func=cmd_replay)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)
