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

    def report(self, key, message, warning=False, kind=None, told=False):
        """Log ``message`` unless it is what ``key`` said last (``warning``: a thing that happens
        on a healthy node, as a chart that stops being collected, not an error). ``kind``: what
        the message is compared by instead (a connection reset, then refused, is one outage).
        ``told``: another problem's line has just said it: kept active, to be cleared, unsaid."""
        said = message if kind is None else kind
        if self.active.get(key) != said:
            self.active[key] = said
            if not told:
                (self.logger.warning if warning else self.logger.error)(message)

    def says(self, key, text):
        """Whether ``key``'s active line holds ``text``."""
        return text in (self.active.get(key) or '')

    def report_all(self, items, together, warning=False):
        """``report`` for each ``(key, message)`` of ``items`` in one line: the message of one
        that is new alone, else ``together(keys of the new ones)``. A parent's child reconnecting
        takes away, then brings back, dozens of charts within seconds: one line each way."""
        new = [key for key, message in items if self.active.get(key) != message]
        self.active.update(items)
        if new:
            line = dict(items)[new[0]] if len(new) == 1 else together(new)
            (self.logger.warning if warning else self.logger.error)(line)

    def clear(self, key, message=None):
        """The problem is over: log ``message`` if it was active."""
        if self.active.pop(key, None) is not None and message:
            self.logger.info(message)

    def clear_all(self, items, together):
        """``clear`` for each ``(key, message)`` of ``items``, in one line (``report_all``)."""
        over = [(key, message) for key, message in items if self.active.pop(key, None) is not None]
        if over:
            self.logger.info(over[0][1] if len(over) == 1 else together([key for key, _ in over]))

    def forget(self, key):
        """Drop ``key`` without a line (its model is gone or replaced: a new one's trouble is told anew)."""
        self.active.pop(key, None)
