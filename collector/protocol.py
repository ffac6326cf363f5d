"""Netdata's external plugin text protocol: pure functions that format its lines.

Each returns one line with its newline. Fields that may hold spaces are single-quoted; a
single quote inside a field is replaced, since the protocol has no escape for it, and so is
a control character.
"""
import hashlib
import re


def pythond_name(name):
    """A job's name as python.d.plugin hands it to the job: each run of white space one '_'
    (charts, log lines and saved models go by it); not a string: as it is, for the check to refuse."""
    return re.sub(r'\s+', '_', name) if isinstance(name, str) else name


def safe_id(name):
    """``name`` as one word: letters, digits, '.', '_' and '-' kept, anything else '_' (a
    chart type from a job named 'my job', a model file from a chart id)."""
    return ''.join(c if c.isalnum() or c in '._-' else '_' for c in str(name))


def bounded_id(name, limit):
    """``safe_id(name)`` where that is at most ``limit`` bytes (UTF-8); else cut, and ended with
    a hash of the whole name, so that two long names that start alike stay two (a file name is
    at most 255 bytes; Netdata cuts a chart id at 199 characters and then does not know the
    chart by its full id)."""
    stem = safe_id(name)
    if len(stem.encode()) <= limit:
        return stem
    cut = stem.encode()[:limit - 17].decode(errors='ignore')   # not through a character
    return '{}-{}'.format(cut, hashlib.sha256(str(name).encode()).hexdigest()[:16])


def one_line(text):
    """``text`` with every control character (a newline would end the protocol line early and
    start one of its own) as '_'; a chart id or dimension name from an agent is data."""
    text = str(text)
    return text if text.isprintable() else ''.join(c if c.isprintable() or c == ' ' else '_' for c in text)


def quotable(text):
    """``text`` fit to go inside single quotes: on one line, its own single quotes as '"' (the
    protocol has no escape; python.d.plugin quotes dimension ids and names as they are), and a
    backslash at its end as '_': the agent's splitter reads a backslash as keeping the next
    character in the word, the closing quote too, which shifts every field after it."""
    text = one_line(text).replace("'", '"')
    if text.endswith('\\'):
        stem = text.rstrip('\\')
        text = stem + '_' * (len(text) - len(stem))
    return text


def _q(value):
    return "'{}'".format('' if value is None else quotable(value))


def chart_line(type_id, name, title, units, family, context, chart_type, priority, update_every,
               options='', plugin='python.d.plugin', module='anomalies'):
    return 'CHART {} {} {} {} {} {} {} {} {} {} {} {}\n'.format(
        one_line(type_id), _q(name), _q(title), _q(units), _q(family), _q(context), chart_type, int(priority),
        int(update_every), _q(options), _q(plugin), _q(module))


def clabel_lines(labels):
    """Chart labels (``{name: value}``), committed; source 1 means set by the collector."""
    return ''.join('CLABEL {} {} 1\n'.format(_q(k), _q(v)) for k, v in labels.items()) + 'CLABEL_COMMIT\n'


def dimension_line(dim_id, name, algorithm='absolute', multiplier=1, divisor=1, options=''):
    return 'DIMENSION {} {} {} {} {} {}\n'.format(_q(dim_id), _q(name), algorithm, int(multiplier), int(divisor),
                                                  _q(options))


def begin_line(type_id, microseconds=0):
    type_id = one_line(type_id)
    return 'BEGIN {} {}\n'.format(type_id, int(microseconds)) if microseconds else 'BEGIN {}\n'.format(type_id)


def set_line(dim_id, value):
    """One value; the protocol takes a signed 64-bit integer and nothing else."""
    return 'SET {} = {}\n'.format(_q(dim_id), int(value))


def end_line():
    return 'END\n'
