"""Command line: ``python -m collector <command>``."""
import argparse
import math
import os
import signal
import sys

from . import __version__


def _whole(text):
    """A whole number, or the option's own error (argparse would name this module's function)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('must be a whole number, got {!r}'.format(text))


def _positive_int(text):
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be >= 1')
    return value


def _seconds(text):
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be >= 0')
    return value


def _port(text):
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError('must be 0 to 65535 (0: any free port)')
    return value


def _speed(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('must be a number above 0, got {!r}'.format(text))
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError('must be a number above 0')
    return value


def _host(text, tls="--protocol https"):
    """An agent as ``host:port`` (or ``parent:port/host/child``): the scheme is ``--protocol``'s
    (``run``'s: the config's ``protocol``)."""
    from .hosts import valid_host
    if not valid_host(text):
        raise argparse.ArgumentTypeError("give host:port without a scheme and with a port from 1 to 65535, "
                                         "e.g. 127.0.0.1:19999 ({} for TLS), got {!r}".format(tls, text))
    return text.strip().rstrip('/')


def _job_name(text):
    if not text.strip():
        raise argparse.ArgumentTypeError('give a job name')
    return text


def _run_host(text):
    return _host(text, "protocol: 'https' in the config")


def _say(*text):
    """print() to stdout for a reader that may go away (``evaluate ... | head``): the rest is not
    shown, and the command goes on to what it writes to files (``--json``, ``--plot``), where a
    BrokenPipeError had stopped it with 'evaluate: [Errno 32] Broken pipe'."""
    try:
        print(*text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


_SIGTERM_SEEN = False   # set by _on_sigterm, whose KeyboardInterrupt must not also read as Ctrl-C


def _on_sigterm(signum, frame):
    """Stop as Ctrl-C does. The line goes out with one unbuffered write: the signal may come while
    the job itself is writing to stderr, and a print there would be a reentrant call into the
    same buffer, raise RuntimeError instead of KeyboardInterrupt, and the SIGTERM would be lost
    as one failed step."""
    global _SIGTERM_SEEN
    _SIGTERM_SEEN = True
    try:
        os.write(2, b'run: SIGTERM, stopping\n')
    except OSError:   # stderr broken: the stop must still happen
        pass
    raise KeyboardInterrupt


REPLAY_PORT = 19998   # beside, not on, the port of an agent on the same machine
STOP_GRACE_S = 15   # after a SIGTERM, the longest a run may take to stop before it exits outright


def _exit_after(seconds):
    """Exit the process ``seconds`` from now, whatever it is doing: the KeyboardInterrupt a
    SIGTERM raises lands between any two bytecodes, at times inside a library's locked section,
    and a stop that then hangs on that lock must not keep the plugin past its agent."""
    import threading

    def exit_now():
        os.write(2, 'run: still stopping {} s after SIGTERM, exiting now\n'.format(seconds).encode())
        os._exit(0)
    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def _stop_on_sigterm():
    """SIGTERM (an agent stopping its plugins) ends the run as Ctrl-C does, through the
    cleanup that stops a training in flight, instead of leaving its process behind; within
    ``STOP_GRACE_S`` at the latest."""
    import signal

    def handler(signum, frame):
        _exit_after(STOP_GRACE_S)
        _on_sigterm(signum, frame)
    signal.signal(signal.SIGTERM, handler)


def _to_stderr(line):
    """A line of ``run``'s own: lost when stderr is closed or broken, and never on stdout (print
    with a file of None writes there), the protocol's channel."""
    if sys.stderr is None:
        return
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass


def cmd_run(args):
    from .config import ConfigError
    from .runner import run
    _stop_on_sigterm()
    failed = []
    try:
        ok = run(args.config, args.job, args.host, args.update_every, args.steps, failed=failed)
    except ConfigError as e:
        for line in e.errors:
            _to_stderr('configuration error, {}'.format(line))
        return 1
    except KeyboardInterrupt:
        if not _SIGTERM_SEEN:   # a SIGTERM has said its own line
            _to_stderr('run: stopped (Ctrl-C)')
        return 0
    if ok == 0 and args.steps:
        # a bounded run (scripts, cron checks) must not read as success with nothing collected
        _to_stderr('run: nothing charted in {} steps{} (see the errors above)'.format(
            args.steps, ' by job {}'.format(', '.join(failed)) if failed else ''))
        return 1
    return 0 if ok >= 0 else 1


def _started_jobs(path):
    """For ``install.sh --check`` (``check-config --started-jobs``): a line per job of ``path``
    that python.d.plugin starts (its configuration holds, its name is its own),
    '<the job as python.d's log lines name it>\t<the type of its charts>\t<its train_min_n_secs>',
    and nothing else (the reasons the others do not start are check-config's)."""
    from .config import ConfigError, chart_type
    from .config_file import load_config_file, pythond_skips
    from .protocol import pythond_name
    try:
        jobs = load_config_file(path, [])
    except ConfigError:
        return 1
    parsed = _parsed_jobs(jobs)
    failing = {name for name, cfg in parsed.items() if isinstance(cfg, ConfigError)}
    skipped = pythond_skips(jobs, failing)
    for name, cfg in parsed.items():
        if name not in skipped and name not in failing:
            print('{}\t{}\t{}'.format(pythond_name(name), chart_type(name, jobs[name].get('name')),
                                      cfg.train_min_n_secs))
    return 0


def _parsed_jobs(jobs):
    """``{job: its JobConfig, or the ConfigError refusing it}`` of a file's jobs, in order."""
    from .config import ConfigError, parse_job_config
    parsed = {}
    for name, raw in jobs.items():
        try:
            parsed[name] = parse_job_config(raw, job_name=name)
        except ConfigError as e:
            parsed[name] = e
    return parsed


def cmd_check_config(args):
    from .config import ConfigError
    from .config_warnings import config_warnings
    from .config_file import load_config_file
    if args.started_jobs:
        return _started_jobs(args.file)
    if args.user is not None:
        try:
            import pwd
            pwd.getpwnam(args.user)
        except (ImportError, KeyError):
            print('check-config: --user {}: no such user here'.format(args.user), file=sys.stderr)
            return 2
    notes = []
    try:
        jobs = load_config_file(args.file, notes)
    except ConfigError as e:
        for line in e.errors:   # most name the file already
            print(line if args.file in line else '{}: {}'.format(args.file, line), file=sys.stderr)
        return 1
    for line in notes:
        print('{}: warning: {}'.format(args.file, line), file=sys.stderr)
    bad = 0
    failing = set()   # jobs whose check fails under python.d
    exports = {}   # (key, where) -> the jobs exporting there
    for name, cfg in _parsed_jobs(jobs).items():
        if isinstance(cfg, ConfigError):
            bad += 1
            failing.add(name)
            for line in cfg.errors:
                print('{}: job {}: {}'.format(args.file, name, line), file=sys.stderr)
            continue
        # flushed: a pipe would otherwise hold it back behind the other jobs' errors on stderr
        print('{}: job {}: ok (host {}, model {}, {} custom model{})'.format(
            args.file, name, cfg.host, cfg.model, len(cfg.custom_models), '' if len(cfg.custom_models) == 1 else 's'),
            flush=True)
        for line in config_warnings(cfg, args.user):
            print('{}: job {}: warning: {}'.format(args.file, name, line), file=sys.stderr, flush=True)
        if cfg.prometheus_textfile:
            exports.setdefault(('prometheus_textfile', os.path.abspath(cfg.prometheus_textfile)), []).append(name)
        if cfg.prometheus_port:
            exports.setdefault(('prometheus_port', cfg.prometheus_port), []).append((name, cfg.prometheus_address))
    bad += _jobs_clashing(args.file, jobs, exports, failing)
    return 1 if bad else 0


def _jobs_clashing(path, jobs, exports, failing):
    """What the jobs of one file do to each other (one export shared, one name run twice, one
    chart type written by two, a job python.d does not start): each said on stderr, their number
    returned. ``exports``: (key, where) -> the jobs exporting there; ``failing``: the jobs whose
    check fails under python.d."""
    from .config import chart_type, served_name
    from .config_file import pythond_skips
    served = {}    # the name python.d runs each job under -> the jobs
    for name, raw in jobs.items():
        served.setdefault(served_name(name, raw), []).append(name)
    bad = 0
    for (key, where), names in exports.items():
        if key == 'prometheus_port':   # one port on two addresses is two listeners, unless one is every address
            names = _clashing_listeners(names)
            where = 'port {}'.format(where)
        if len(names) > 1:   # one file, one port per job: the jobs would overwrite or refuse each other
            bad += 1
            print("{}: jobs {}: key '{}': each job needs its own, they share {}".format(
                path, ', '.join(names), key, where), file=sys.stderr)
    skipped = pythond_skips(jobs, failing)
    for served_as, names in served.items():
        running = [n for n in names if n not in skipped and n not in failing]
        if len(running) > 1:   # python.d starts both: one job's values overwrite the other's
            bad += 1
            print("{}: jobs {}: python.d runs each of them as '{}' (a job's name key, else the job's), all writing the "
                  "same charts: give each its own name".format(path, ', '.join(running), served_as),
                  file=sys.stderr)
    alike = {}   # the type of the charts python.d's jobs write -> the names it runs them under
    for served_as, names in served.items():
        if any(n not in skipped and n not in failing for n in names):
            alike.setdefault(chart_type(served_as), []).append(served_as)
    for written_as, names in alike.items():
        if len(names) > 1:   # 'a:b' and 'a_b': two jobs to python.d, one to the agent and on disk
            bad += 1
            print("{}: jobs run as {}: their charts are all {}.* (a name's characters other than letters, digits, "
                  "'.', '_' and '-' are written as '_'), one job's values overwriting the other's, and their saved "
                  "models one folder: give each a name that differs otherwise".format(
                      path, ', '.join("'{}'".format(n) for n in names), written_as), file=sys.stderr)
    for name, before in skipped.items():
        bad += 1
        why = ("the same name as job {}'s" if served_name(name, jobs[name]) == served_name(before, jobs[before]) else
               "a name that is part of job {}'s, the job started before it (it compares names as text)")
        print("{}: job {}: python.d does not run it ('already served by another job'): {}; give it a name of its "
              "own".format(path, name, why.format(before)), file=sys.stderr)
    return bad


def _clashing_listeners(jobs):
    """The jobs among ``(job, address)`` on one port that cannot all listen: those on one
    address, or any of them when one listens on every address."""
    wildcard = {'', '0.0.0.0', '::', '[::]', '*'}
    addresses = [a.strip() for _, a in jobs]
    if set(addresses) & wildcard:
        return [name for name, _ in jobs]
    resolved = [_listen_addresses(a) for a in addresses]   # 'localhost' is 127.0.0.1 too
    return [name for k, (name, _) in enumerate(jobs)
            if any(resolved[k] & resolved[j] for j in range(len(jobs)) if j != k)]


def _listen_addresses(address):
    """The IP addresses a listener on ``address`` binds (the name itself when it does not resolve).
    'localhost' is the loopback whatever the resolver says (a system without /etc/hosts)."""
    import socket
    name = address.strip('[]')
    loopback = {'127.0.0.1', '::1'} if name.lower().rstrip('.') == 'localhost' else set()
    try:
        return {info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)} | loopback or {address}
    except (OSError, UnicodeError):
        return loopback or {address}


def cmd_replay(args):
    import time
    from .replay import Recording, RecordingError, ReplayClock, ReplayServer
    if not os.path.isdir(args.dir):   # as evaluate says it, not as the recording.json it would read
        print('replay: no such folder: {}'.format(args.dir), file=sys.stderr)
        return 1
    try:
        rec = Recording(args.dir, labels_needed=False)
    except RecordingError as e:
        print('replay: {}'.format(e), file=sys.stderr)
        return 1
    offset = args.start_offset if args.start_offset is not None else 0
    if not 0 <= offset < rec.end - rec.start:
        print('replay: --start-offset must be 0 to {} (the recording is {} s long), got {}'.format(
            rec.end - rec.start - 1, rec.end - rec.start, offset), file=sys.stderr)
        return 1
    clock = ReplayClock(rec.start + offset, speed=args.speed, stepped=args.step_mode)
    try:
        server = ReplayServer(rec, clock, port=args.port).start()
    except OSError as e:
        print('replay: cannot listen on 127.0.0.1:{}: {} (give another --port)'.format(args.port, e.strerror or e),
              file=sys.stderr)
        return 1
    print('replaying {} ({} charts, {}..{}) on http://{} at {}'.format(
        args.dir, len(rec.charts), rec.start, rec.end, server.host,
        'stepped clock (POST /replay/step?seconds=N)' if args.step_mode else '{}x speed'.format(args.speed)),
        file=sys.stderr, flush=True)
    try:
        while clock.now() <= rec.end or args.step_mode:
            time.sleep(0.5)
        print('replay: the recording ended ({}); stopped serving'.format(rec.end), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_record(args):
    import threading
    if args.before is not None and not args.past:
        print('record: --before needs --past (a live window starts now)', file=sys.stderr)
        return 1

    def stopped(signum, frame):   # as Ctrl-C: what was half-made goes
        raise KeyboardInterrupt
    main = threading.current_thread() is threading.main_thread()   # (signal handlers live there only)
    before_term = signal.signal(signal.SIGTERM, stopped) if main else None
    try:
        return _record_command(args)
    finally:
        if main:
            signal.signal(signal.SIGTERM, before_term if before_term is not None else signal.SIG_DFL)


def _record_command(args):
    from .record import RecordError, record
    password, problem = _password(args, 'record')
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        failed = record(args.host, args.seconds, args.out, past=args.past, charts_regex=args.charts_regex,
                        labels=args.labels, description=args.description or '', protocol=args.protocol,
                        before=args.before, auth=None if args.username is None else (args.username, password),
                        tls_verify=not args.no_tls_verify)
    except KeyboardInterrupt:
        print('record: stopped; nothing was kept in {} (a window the agent still holds can be taken '
              'with --past --before)'.format(args.out), file=sys.stderr)
        return 130
    except RecordError as e:
        print('record: {}'.format(e), file=sys.stderr)
        return 1
    except OSError as e:   # the disk filled up under it
        print('record: cannot write {}: {}'.format(e.filename or args.out, e.strerror or e), file=sys.stderr)
        return 1
    if failed:
        from .problems import first_few, plural
        print('record: {} failed and {} left out: {}'.format(
            plural(len(failed), 'chart'), 'was' if len(failed) == 1 else 'were', first_few(failed, 10)),
            file=sys.stderr)
    print('recorded into {}'.format(args.out), file=sys.stderr)
    return 0


def _overrides(pairs):
    """``--set key=value`` options, values read as YAML (``3``, ``true``, ``'hbos'``); a value
    YAML cannot read (``*.uptime``, which YAML takes for an alias) is the string as given."""
    import yaml
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise ValueError('--set expects key=value, got {!r}'.format(pair))
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _job_config(args):
    from .config import parse_job_config
    from .runner import select_job
    raw = select_job(args.config, args.job)
    raw.update(_overrides(args.set))
    return parse_job_config(raw, job_name=args.job)


def _usable(paths, wanted, kind):
    """The paths that are a ``kind`` folder; the others (a README beside them) are named on stderr."""
    keep = []
    for path in paths:
        if wanted(path):
            keep.append(path)
        else:
            print('evaluate: skipping {}: not a {} folder'.format(path, kind), file=sys.stderr)
    return keep


PLOT_FORMATS = ('.png', '.pdf', '.svg', '.jpg', '.jpeg')


def _output_problem(path, what, formats=None):
    """Why ``path`` cannot be written as the ``what`` output (checked before hours of work), or None."""
    if os.path.isdir(path) or path.endswith(os.sep):
        return '{} {}: is a folder; give a file name'.format(what, path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return '{} {}: no folder {}'.format(what, path, parent)
    if not os.access(parent, os.W_OK):
        return '{} {}: cannot write into {}'.format(what, path, parent)
    ext = os.path.splitext(path)[1].lower()
    if formats and ext not in formats:
        return '{} {}: the file name must end in {}'.format(what, path, ', '.join(formats))
    return None


def _plot_names(plot, names):
    """One plot file per recording, ``PLOT-NAME.png``; two recordings of one name get -2, -3."""
    root, ext = os.path.splitext(plot)
    out, seen = [], {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append('{}-{}{}{}'.format(root, name, '' if seen[name] == 1 else '-{}'.format(seen[name]), ext))
    return out


def _evaluate_problems(args, paths):
    """``(problems, unscorable)``: what stops an evaluation before its first replay (unwritable
    outputs, options of the other kind, and every recording's or dataset's own files, one line
    each), and the ``(path, why)`` of datasets labeled all one way, which are left out."""
    from .evaluate import OneClassLabels, check_recording, load_dataset
    problems = [p for p in (args.json and _output_problem(args.json, '--json'),
                            args.plot and _output_problem(args.plot, '--plot', PLOT_FORMATS)) if p]
    for option, given in (('--plot', args.plot), ('--trim', args.trim), ('--warmup', args.warmup is not None)):
        if given and args.dataset:
            problems.append('{}: only for recordings'.format(option))
    unscorable = []
    for path in paths:
        try:
            if args.dataset:
                load_dataset(path)
            else:
                check_recording(path, args.warmup, args.trim)
        except OneClassLabels as e:
            unscorable.append((path, str(e)))
        except (OSError, ValueError) as e:
            problems.append(str(e))
    return problems, unscorable


def _evaluate_recordings(args, paths, plots):
    """Each recording replayed to the job and scored, its table said (and plotted), then the
    summary over all of them; returns what ``--json`` writes."""
    from .evaluate import (evaluate_recording, format_recording_table, format_summary, plot_recording,
                           print_progress)
    from .metrics import recordings_summary
    results = []
    for path, plot in zip(paths, plots):
        res, run = evaluate_recording(path, args.config, args.job, args.warmup, overrides=_overrides(args.set),
                                      progress=None if args.quiet else print_progress, trim=args.trim)
        if not args.quiet:
            sys.stderr.write('\n')
        _tell_job_errors(run)
        _say(format_recording_table(res))
        _say()
        if plot:
            _plot(plot_recording, run, res, plot)
        results.append(res)
    summary = recordings_summary(results)
    _say(format_summary(summary))
    result = dict(results[0]) if len(results) == 1 else {'recordings': results}
    result['summary'] = summary
    return result


def cmd_evaluate(args):
    """``evaluate``; Ctrl-C, at any point of it, stops it with one line."""
    try:
        return _evaluate(args)
    except KeyboardInterrupt:   # (the line after the progress, which ends without one)
        print('\nevaluate: stopped{}'.format('; no results written to {}'.format(args.json) if args.json else ''),
              file=sys.stderr)
        return 130


def _evaluate(args):
    from .config import ConfigError
    from .evaluate import (DATASET_FILES, dataset_files_missing, evaluate_datasets, format_dataset_table, is_dataset,
                           is_recording, write_json)
    kind = 'dataset' if args.dataset else 'recording'
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:   # a mistyped name would drop its figures from the mean without a word
        print('evaluate: no such file or folder: {}'.format(', '.join(missing)), file=sys.stderr)
        return 1
    if args.dataset:   # a folder with a file of its own misnamed would drop out of the mean
        partial = [(p, dataset_files_missing(p)) for p in args.paths if os.path.isdir(p) and not is_dataset(p)]
        partial = [(p, lack) for p, lack in partial if lack]
        for path, lack in partial:
            print('evaluate: {} holds part of a dataset but no {} (a dataset folder holds {})'.format(
                path, ' or '.join(lack), ', '.join(DATASET_FILES)), file=sys.stderr)
        if partial:
            return 1
    paths = _usable(args.paths, is_dataset if args.dataset else is_recording, kind)
    if not paths:
        print('evaluate: no {} folder among {}'.format(kind, ', '.join(args.paths)), file=sys.stderr)
        return 1
    problems, unscorable = _evaluate_problems(args, paths)
    for path, why in unscorable:   # sound, but nothing to rank against: the others are scored
        print('evaluate: skipping {}: left out of the mean'.format(why), file=sys.stderr)
    paths = [p for p in paths if p not in dict(unscorable)]
    if not paths and not problems:
        print('evaluate: no dataset left to score', file=sys.stderr)
        return 1
    if problems:
        for line in problems:
            print('evaluate: {}'.format(line), file=sys.stderr)
        return 1
    if args.plot and len(paths) > 1:
        plots = _plot_names(args.plot, [os.path.basename(os.path.normpath(p)) for p in paths])
    else:
        plots = [args.plot] * len(paths)
    try:
        if args.dataset:
            result = evaluate_datasets(paths, _job_config(args))
            _say(format_dataset_table(result))
        else:
            result = _evaluate_recordings(args, paths, plots)
    except ConfigError as e:
        for line in e.errors:
            print('configuration error, {}'.format(line), file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as e:
        print('evaluate: {}'.format(e), file=sys.stderr)
        return 1
    if args.json:
        write_json(result, args.json)
        _say('results written to {}'.format(args.json))
    return 0


def cmd_demo(args):
    from .evaluate import check_recording, evaluate_recording, format_recording_table, plot_recording, print_progress
    from .metrics import rising_edges
    path = args.recording or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'demo',
                                          'recording')
    if not os.path.isdir(path):
        print('demo: no recording at {} (run from a checkout, or pass --recording)'.format(path), file=sys.stderr)
        return 1
    problem = _output_problem(args.plot, '--plot', PLOT_FORMATS)
    try:
        rec = check_recording(path)
    except ValueError as e:
        problem = str(e)
    if problem:
        print('demo: {}'.format(problem), file=sys.stderr)
        return 1
    kinds = [inc.get('kind', 'incident') for inc in rec.labels.get('incidents', [])]
    _say('Replaying a Netdata agent recording ({}) through the anomalies job;'.format(path))
    _say('the job trains on the clean lead, then steps through {}.\n'.format(
        '{} labeled incident{} ({})'.format(len(kinds), '' if len(kinds) == 1 else 's', ', '.join(kinds))
        if kinds else 'the rest of it (no labels.json: no incidents to score)'))
    res, run = evaluate_recording(path, progress=print_progress)
    if args.recording is None:
        res['recording'] = 'demo/recording'
    sys.stderr.write('\n')
    _tell_job_errors(run)
    start = run['recording'].start
    _say('Flags raised (chart: seconds since recording start):')
    for model, flags in sorted(run['flags'].items()):
        edges = rising_edges(run['times'], flags)
        if edges:
            _say('  {:<34} {}'.format(model, ', '.join('+{}s'.format(t - start) for t in edges[:12])))
    _say()
    _say(format_recording_table(res))
    _say()
    _plot(plot_recording, run, res, args.plot)
    return 0


def _tell_job_errors(run):
    from .evaluate import job_errors
    errors = job_errors(run)
    if errors:
        print('the job logged errors (the first {}):'.format(len(errors)), file=sys.stderr)
        for msg in errors:
            print('  ' + msg, file=sys.stderr)


def _plot(plot_recording, run, res, out):
    try:
        plot_recording(run, res, out)
    except ImportError as e:   # the plot is an extra; the figures are printed already
        print('plot not written: {} (pip install matplotlib)'.format(e), file=sys.stderr)
        return
    _say('plot written to {}'.format(out))


RELATIVE_MAX = 3 * 365 * 86400   # the agent reads smaller magnitudes as seconds relative to now


def _window_problem(after, before, now):
    """Why ``--after``/``--before`` name no window, or None (0 or negative: relative to now,
    else a unix time)."""
    for name, value in (('--after', after), ('--before', before)):
        if 0 < value < 10 ** 9 or value < -RELATIVE_MAX or value >= 10 ** 10:
            return '{} {}: give seconds relative to now (negative, at most {} back) or a unix time'.format(
                name, value, RELATIVE_MAX)
    if (after > 0) != (before > 0):   # a time and seconds back from the agent's now: checked on its clock (top)
        return None
    start = now + after if after <= 0 else after
    end = now + before if before <= 0 else before
    if start >= end:
        return 'the window {} (--after {} --before {})'.format(
            'ends before it starts' if start > end else 'is empty: it ends where it starts', after, before)
    return None


PASSWORD_ENV = 'NETDATA_ANOMALIES_PASSWORD'   # top's and record's password, kept off their command line


def _auth_arguments(parser):
    """--username, --password and --no-tls-verify, as a job's keys."""
    parser.add_argument('--username',
                        help="for an agent behind basic authentication (a proxy), as a job's username key")
    parser.add_argument('--password',
                        help="its password, as a job's password key; without it, the environment's {} or a prompt "
                             "(ps shows a command line to every user)".format(PASSWORD_ENV))
    parser.add_argument('--no-tls-verify', action='store_true',
                        help="with https: accept the agent's certificate unchecked (self-signed), as a job's "
                             "tls_verify: no")


def _password(args, command):
    """``(password, None)`` for ``args.username`` (None without one), or ``(None, the error)``:
    a password on the command line is in every user's ps, so it comes from the environment, or
    is asked for."""
    if args.username is None or args.password is not None:
        return args.password, None
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password, None
    if not sys.stdin.isatty():
        return None, ('{}: --username needs its password: set {} (or give --password, which ps shows to every '
                      'user)'.format(command, PASSWORD_ENV))
    import getpass
    return getpass.getpass('password of {} at {}: '.format(args.username, args.host)), None


def cmd_top(args):
    import time
    from .netdata_api import NetdataError
    from .top import run
    problem = _window_problem(args.after, args.before, time.time())
    if problem:
        print('top: {}'.format(problem), file=sys.stderr)
        return 1
    password, problem = _password(args, 'top')
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        _say(run(args.host, args.after, args.before, args.limit, args.protocol, args.username, password,
                  tls_verify=not args.no_tls_verify, job=args.job))
    except NetdataError as e:
        print('top: {}'.format(e), file=sys.stderr)
        return 1
    return 0


def build_parser():
    """The command line: one sub-command per task, each added by a function of its own."""
    p = argparse.ArgumentParser(prog='python -m collector',
                                description='ML anomaly detection for Netdata charts (python.d anomalies module).')
    p.add_argument('--version', action='version', version='%(prog)s {}'.format(__version__))
    sub = p.add_subparsers(dest='command', required=True)
    _add_run_parser(sub)
    _add_check_config_parser(sub)
    _add_record_parser(sub)
    _add_replay_parser(sub)
    _add_evaluate_parser(sub)
    _add_top_parser(sub)
    _add_demo_parser(sub)
    return p


def _add_run_parser(sub):
    r = sub.add_parser('run', help='run a job standalone, writing the external plugin protocol to stdout')
    r.add_argument('--config', help='python.d style anomalies.conf (default: built-in defaults)')
    r.add_argument('--job', help="job name in the config (default: every job of the file, side by side, as "
                                 "python.d.plugin runs them)")
    r.add_argument('--host', type=_run_host, help="Netdata to read, e.g. 127.0.0.1:19999 or 'parent:19999/host/child' "
                                              "(for every job run)")
    r.add_argument('--update-every', type=_positive_int,
                   help="seconds between steps at least (the agent's interval, which a plugin is given; a job's "
                        'own longer update_every stands, as under python.d)')
    r.add_argument('--steps', type=_positive_int, help='stop after N steps (default: run forever)')
    r.set_defaults(func=cmd_run)


def _add_check_config_parser(sub):
    c = sub.add_parser('check-config', help='validate a config file; non-zero exit with the reasons')
    c.add_argument('file', help='the anomalies.conf to check (python.d job file)')
    c.add_argument('--user', help="the user the jobs run as (install.sh --check gives the agent's): whether it "
                                  "may write where the jobs write is checked for it (default: this user)")
    c.add_argument('--started-jobs', action='store_true', help=argparse.SUPPRESS)   # install.sh --check's
    c.set_defaults(func=cmd_check_config)


def _add_record_parser(sub):
    rc = sub.add_parser('record', help='record a live Netdata agent into a recording folder')
    rc.add_argument('--host', type=_host, default='127.0.0.1:19999',
                    help="the agent to record, e.g. 127.0.0.1:19999 or 'parent:19999/host/child' (default %(default)s)")
    rc.add_argument('--protocol', default='http', choices=['http', 'https'], help='default %(default)s')
    rc.add_argument('--seconds', type=_positive_int, required=True, help='length of the window')
    rc.add_argument('--out', required=True, help='folder to write')
    rc.add_argument('--past', action='store_true', help='take the last N seconds the agent already has')
    rc.add_argument('--before', type=_positive_int,
                    help='with --past: the window ends at this unix second (default: the newest the agent has)')
    rc.add_argument('--charts-regex', help='record only charts matching this regex')
    rc.add_argument('--labels', help='labels.json (incidents) to include')
    rc.add_argument('--description', help='free text stored in recording.json')
    _auth_arguments(rc)
    rc.set_defaults(func=cmd_record)


def _add_replay_parser(sub):
    rp = sub.add_parser('replay', help='serve a recorded Netdata API on loopback')
    rp.add_argument('dir', help='recording folder')
    rp.add_argument('--port', type=_port, default=REPLAY_PORT,
                    help='loopback port to serve on (default %(default)s, beside an agent\'s 19999; 0: any free one)')
    mode = rp.add_mutually_exclusive_group()
    mode.add_argument('--speed', type=_speed, default=1.0, help='clock speed (default 1 = real time)')
    mode.add_argument('--step-mode', action='store_true', help='clock moves only on POST /replay/step?seconds=N')
    rp.add_argument('--start-offset', type=_whole, help='seconds after the recording start where the clock starts')
    rp.set_defaults(func=cmd_replay)


def _add_evaluate_parser(sub):
    ev = sub.add_parser('evaluate', help='score the detector on recordings (labels.json) or labeled datasets')
    ev.add_argument('paths', nargs='+', help='recording folders, or dataset folders with --dataset')
    ev.add_argument('--dataset', action='store_true', help='paths are dataset folders (train.csv, eval.csv, ...)')
    ev.add_argument('--config', help='anomalies.conf to evaluate (default: built-in defaults)')
    ev.add_argument('--job', help='job in the config (default: the first)')
    ev.add_argument('--warmup', type=_seconds,
                    help='seconds of history before the job starts (default: the quiet lead before the first '
                         'labeled incident, in whole minutes; without one, half the recording, 1 to 10 minutes)')
    ev.add_argument('--trim', type=_seconds, default=0,
                    help="seconds of each recording's start to leave out, as if it had begun that much later "
                         "(a fresh agent's start-up then out of sight; the warm-up shrinks with it)")
    ev.add_argument('--json', help='write the results as JSON here')
    ev.add_argument('--plot', help='write a plot of probabilities with incidents shaded (.png, .pdf, .svg or .jpg)')
    ev.add_argument('--set', action='append', metavar='KEY=VALUE',
                    help='override a configuration key, e.g. --set model=hbos (repeatable)')
    ev.add_argument('--quiet', action='store_true', help='no progress on stderr')
    ev.set_defaults(func=cmd_evaluate)


def _add_top_parser(sub):
    tp = sub.add_parser('top', help='rank the charts of a node by how anomalous they were in a window')
    tp.add_argument('--host', type=_host, default='127.0.0.1:19999',
                    help="the agent running the anomalies module, e.g. 'parent:19999/host/child' (default %(default)s)")
    tp.add_argument('--after', type=int, default=-600,
                    help='window start: seconds relative to now (negative) or unix time (default %(default)s)')
    tp.add_argument('--before', type=int, default=0, help='window end: 0 = now, negative = relative, or unix time')
    tp.add_argument('--limit', type=_positive_int, default=20, help='how many charts to list (default 20)')
    tp.add_argument('--job', type=_job_name,
                    help="only this job's charts (its name key in anomalies.conf, else its job name); default: every "
                         "job's, those of a job other than anomalies shown as job/chart. A job on a parent reading a "
                         "child charts on the parent: --host parent:19999 --job JOB")
    tp.add_argument('--protocol', default='http', choices=['http', 'https'], help='default %(default)s')
    _auth_arguments(tp)
    tp.set_defaults(func=cmd_top)


def _add_demo_parser(sub):
    dm = sub.add_parser('demo', help='replay the shipped recording through the job and show what it flags')
    dm.add_argument('--recording', help='recording folder (default: demo/recording)')
    dm.add_argument('--plot', default='demo-anomalies.png', help='PNG to write (default: demo-anomalies.png)')
    dm.set_defaults(func=cmd_demo)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)
