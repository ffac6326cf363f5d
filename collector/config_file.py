"""The python.d config file read as python.d.plugin reads it: its YAML, its jobs, the jobs it
would not start, and what the file says that no job's keys do (a key given twice, a key at the
top level that reaches no job). Each job's keys are then validated by ``config.parse_job_config``.
"""
import os
import re

from .config import DEFAULTS, FRAMEWORK_INHERITED, FRAMEWORK_KEYS, ConfigError, served_name
from .protocol import pythond_name


def load_config_file(path, notes=None):
    """Read a YAML python.d config file into ``{job_name: raw_config}``."""
    import yaml
    try:
        with open(path, 'rb') as f:
            data = _yaml_load(f.read().decode('utf-8-sig'), notes)
    except OSError as e:
        raise ConfigError(['cannot read {}: {}'.format(path, e.strerror or e)])
    except RecursionError:
        raise ConfigError(['{} is not valid YAML: nested too deep to read'.format(path)])
    except UnicodeDecodeError as e:
        line = e.object.count(b'\n', 0, e.start) + 1
        raise ConfigError(['cannot read {}: not UTF-8 text (byte 0x{:02x} on line {})'.format(
            path, e.object[e.start], line)])
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = ' (line {}, column {})'.format(mark.line + 1, mark.column + 1) if mark is not None else ''
        what = getattr(e, 'problem', None) or str(e).replace('\n', ' ')
        context, at = getattr(e, 'context', None), getattr(e, 'context_mark', None)
        if context and at is not None:
            what += ', {} at line {}'.format(context, at.line + 1)
        hint = _yaml_hint(getattr(e, 'problem', None), context)
        raise ConfigError(['{} is not valid YAML{}: {}{}'.format(path, where, what,
                                                                 ' ({})'.format(hint) if hint else '')])
    return job_configs_from_file(data, notes)


def _yaml_load(text, notes):
    """``yaml.safe_load``, noting each key given twice in one mapping (YAML keeps the last, as
    python.d does: an option uncommented above one set further down is silently not used)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    twice = []   # (key, the line of its first, the line of the one used), numbered from 1

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == 'tag:yaml.org,2002:merge':
                # python.d.plugin's loader builds mappings from plain pairs: it fails on the whole
                # file and runs none of its jobs, so neither may this
                raise ConfigError(["line {}: '<<:' (a YAML merge key) cannot be used: python.d.plugin fails to "
                                   "load a file that has one and runs none of its jobs; write the keys out in "
                                   "each job".format(key_node.start_mark.line + 1)])
            key = loader.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    twice.append((key, seen[key] + 1, key_node.start_mark.line + 1))
                seen[key] = key_node.start_mark.line
            except TypeError:   # an unhashable key: the mapping's own construction says so
                pass
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    data = yaml.load(text, Loader=Loader)
    if notes is not None:
        notes.extend(_octal_notes(yaml.compose(text, Loader=yaml.SafeLoader)))
    if twice and notes is not None:
        # the job each line is in: a file of several jobs says whose key it is
        root, jobs = yaml.compose(text, Loader=yaml.SafeLoader), []
        if isinstance(root, yaml.MappingNode):
            jobs = [(v.start_mark.line + 1, v.end_mark.line + (v.end_mark.column > 0), k.value)
                    for k, v in root.value
                    if isinstance(v, yaml.MappingNode) and isinstance(k, yaml.ScalarNode)]
        for key, first, used in twice:
            job = next((name for start, end, name in jobs if start <= used <= end), None)
            notes.append("{}key {!r} is given twice (lines {} and {}): line {}'s is used".format(
                'job {}: '.format(job) if job is not None else '', key, first, used, used))
    return data


def _octal_notes(node):
    """A note for each number written with a leading 0 (``010``): YAML (and so python.d) reads
    it as octal, 8, where a person meant ten."""
    import yaml
    if isinstance(node, yaml.MappingNode):
        return [n for k, v in node.value for n in _octal_notes(k) + _octal_notes(v)]
    if isinstance(node, yaml.SequenceNode):
        return [n for v in node.value for n in _octal_notes(v)]
    if (isinstance(node, yaml.ScalarNode) and node.tag == 'tag:yaml.org,2002:int' and node.style is None
            and re.match(r'[-+]?0[0-7_]+$', node.value)):
        meant = node.value.lstrip('+-0').replace('_', '') or '0'
        return ['line {}: {} is read as the octal number {} (its leading 0): write {} if {} is meant'.format(
            node.start_mark.line + 1, node.value, int(node.value.replace('_', ''), 8), meant, meant)]
    return []


def _yaml_hint(problem, context):
    """What was most likely written, for the YAML errors an edit of the file makes most; '' else."""
    problem, context = problem or '', context or ''
    if "found character '\\t'" in problem:
        return 'YAML takes no tab: indent with spaces'
    if 'scanning an alias' in context or problem.startswith('found undefined alias'):
        return "a value beginning with '*' is read as a YAML alias: quote it, as in '*.uptime'"
    m = re.match(r"found character '(.)' that cannot start any token", problem)
    if m:
        return "a value beginning with '{}' must be quoted".format(m.group(1))
    if problem == 'mapping values are not allowed here':
        return "a value holding ': ' must be quoted, and each option goes on a line of its own"
    return ''


def job_configs_from_file(data, notes=None):
    """Split a python.d module config (already YAML-loaded) into ``{job_name: raw_config}``.

    Like python.d: every mapping at the top level is a job and inherits the file's
    top-level framework keys; a file without any mapping (or empty) is one job named after the
    module. A job name YAML reads as a boolean or a number is refused: python.d.plugin stops on it.
    Other top-level keys beside jobs reach no job; ``notes`` gets a line for each.
    """
    if data is None:   # empty, or only comments: python.d runs one job with every default
        if notes is not None:
            notes.append("no job in it: python.d runs one job, 'anomalies', with every default (to turn the "
                         "module off, set 'anomalies: no' in python.d.conf)")
        return {'anomalies': {}}
    if not isinstance(data, dict):
        raise ConfigError(['the configuration file must be a YAML mapping of jobs'])
    module_defaults = {k: v for k, v in data.items() if k in FRAMEWORK_INHERITED and not isinstance(v, dict)}
    jobs = {k: v for k, v in data.items() if isinstance(v, dict)}
    if not jobs:
        for key, value in data.items():
            if value is None and key not in DEFAULTS and key not in FRAMEWORK_KEYS and notes is not None:
                notes.append("'{}:' has nothing under it, so it is no job: python.d runs the file as one job with "
                             "'{}' as an option; indent at least one option under it".format(key, key))
        single = dict(data)
        _drop_pythond_own('anomalies', single, notes)
        return {'anomalies': single}
    for key in data:
        if key in jobs or key in module_defaults or notes is None:
            continue
        if data[key] is None and key not in DEFAULTS and key not in FRAMEWORK_KEYS:
            notes.append("'{}:' has nothing under it, so it is no job: python.d does not run it; indent at least "
                         "one option under it".format(key))
        else:
            notes.append("top-level key '{}' reaches no job (python.d passes only {} from the top level); "
                         "indent it under a job".format(key, ', '.join(sorted(FRAMEWORK_INHERITED))))
    unquoted = [name for name in jobs if not isinstance(name, str)]
    if unquoted:   # python.d.plugin stops at start-up on such a name (re.sub of a non-string)
        raise ConfigError(["job {!r}: YAML reads this job's name as {} (unquoted on, off, yes, no, true, false or a "
                           "number); python.d.plugin stops on it, with every module's jobs: quote it".format(
                               name, type(name).__name__) for name in unquoted])
    out = {}
    for name, job in jobs.items():
        merged = dict(module_defaults)
        merged.update(job)
        out[name] = merged
        _drop_pythond_own(name, merged, notes)
    return out


def _drop_pythond_own(job, raw, notes):
    """python.d.plugin sets ``override_name`` (from 'name') and ``job_name`` (the job's key) over
    what the file says: taken out here too, so a standalone run names the job as python.d does."""
    for key, instead in (('override_name', "'name'"), ('job_name', "the job's key in the file")):
        if key in raw:
            raw.pop(key)
            if notes is not None:
                notes.append("job {}: key '{}' is python.d's own, set from {}: this value is not used".format(
                    job, key, instead))


def pythond_skips(jobs, failing=()):
    """``{job: the job before it}`` for the jobs of a file (``{job_name: raw}``, in order) that
    python.d.plugin (1.37) does not start, saying 'already served by another job'. It keeps
    only the name of the job it started last, and skips a job whose name is a part of that one,
    as text: 'web1' after 'web10', 'db' after 'db_replica'. Two jobs of one name with another
    started between them both run, and write the same charts. The ``failing`` jobs do not start
    (their check fails), so the name kept stays the one before."""
    skipped, last = {}, None
    for job, raw in jobs.items():
        name = served_name(job, raw)
        if last is not None and name in last[1]:
            skipped[job] = last[0]
        elif job not in failing:
            last = (job, name)
    return skipped


def pythond_file_notes(environ=None, job_name=None):
    """``(path, notes)`` for the anomalies.conf python.d.plugin read (the user's, else the
    stock one, as the agent tells its plugins where they are), or ``(None, [])``: python.d
    hands a job its keys, and a key given twice (one uncommented above the one the shipped job
    sets) would be used silently where check-config warns of it. With ``job_name`` (python.d's
    name of a job of it), that job's notes, and those of the file as a whole for its first job
    only: every job of the file logs what it is told."""
    environ = os.environ if environ is None else environ
    for key in ('NETDATA_USER_CONFIG_DIR', 'NETDATA_STOCK_CONFIG_DIR'):
        path = os.path.join(environ.get(key) or '', 'python.d', 'anomalies.conf')
        if environ.get(key) and os.path.isfile(path):
            notes = []
            try:
                jobs = list(load_config_file(path, notes))
            except ConfigError:   # python.d read it, or the job would not exist: nothing to add
                return path, []
            if job_name is not None:
                first = jobs and pythond_name(jobs[0]) == job_name
                notes = [n for n in notes if (first if note_job(n, jobs) is None else
                                              pythond_name(note_job(n, jobs)) == job_name)]
            return path, notes
    return None, []


def note_job(line, jobs):
    """The job of ``jobs`` (as the file names them) a note of ``load_config_file`` is about, or None
    for the file as a whole."""
    return next((job for job in jobs if isinstance(job, str) and line.startswith('job {}: '.format(job))), None)
