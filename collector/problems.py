"""Log lines that say a problem once: when it starts and when it clears, not on every step.

A job runs for months at one step a second: a chart that stays unreadable must not write a
line a second, nor a list of hundreds of charts. Also the few wording helpers these lines share.
"""
import re


def plural(n, noun):
    """'1 model', '3 models'."""
    return '{} {}{}'.format(n, noun, '' if n == 1 else 's')


def count_of(noun, ids):
    """The noun alone for one id ('model'; the id follows), else how many ('3 models')."""
    return noun if len(ids) == 1 else plural(len(ids), noun)


def first_few(ids, n=5):
    """The first ``n`` ids, and how many more: a line that lists 300 charts is read by no one."""
    more = ' (+{} more)'.format(len(ids) - n) if len(ids) > n else ''
    return ', '.join(ids[:n]) + more


def gist(reason):
    """A reason without its numbers: '6069 of 6069 values' and '6090 of 6090 values' say one thing."""
    return None if reason is None else re.sub(r'\d+(\.\d+)?', 'N', reason)


class ProblemLog:
    """The problems active now, by key ('fetch:HOST', 'missing:MODEL', ...), each logged once
    as an error when it starts or its message changes, and once as info when it clears."""

    def __init__(self, logger):
        self.logger = logger
        self.active = {}   # key -> the message logged

    def __contains__(self, key):
        return key in self.active

    def report(self, key, message, warning=False):
        """Log ``message`` unless it is what ``key`` said last (``warning``: a thing that happens
        on a healthy node, as a chart that stops being collected, not an error)."""
        if self.active.get(key) != message:
            self.active[key] = message
            (self.logger.warning if warning else self.logger.error)(message)

    def clear(self, key, message=None):
        """The problem is over: log ``message`` if it was active."""
        if self.active.pop(key, None) is not None and message:
            self.logger.info(message)

    def forget(self, key):
        """Drop ``key`` without a line (its model is gone or replaced: a new one's trouble is told anew)."""
        self.active.pop(key, None)
