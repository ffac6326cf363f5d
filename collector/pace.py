"""Whether the job's steps keep up with ``update_every``.

python.d runs a job's next step when the last one is done: a step that takes longer than
``update_every`` costs the charts the seconds it overran, without a word from the framework.
One such step now and then (a training's result taken up, the rows read again after a gap) is
nothing; many in a row are a box too small for the charts in scope (a Raspberry Pi with
hundreds of charts), which the log should say once, with what to change.
"""
from collections import deque

# a step is late when it takes longer than update_every; this many late steps among the last
# WINDOW_STEPS is a job that does not keep up
WINDOW_STEPS = 60
LATE_STEPS = 10
# told to keep up again after this many steps in a row on time
SETTLED_STEPS = 300


class Pace:
    """The last steps' durations, and what to tell of them: ``add`` returns a warning when the
    steps stop keeping up, a note when they keep up again, else None."""

    def __init__(self, every, window=WINDOW_STEPS, late=LATE_STEPS, settled=SETTLED_STEPS):
        self.every = float(every)
        self.late, self.settled = late, settled
        self.times = deque(maxlen=window)
        self.behind = False      # warned, and not yet kept up again
        self.on_time = 0         # steps in a row on time

    def add(self, seconds):
        self.times.append(float(seconds))
        if seconds > self.every:
            self.on_time = 0
        else:
            self.on_time += 1
        if self.behind:
            if self.on_time >= self.settled:
                self.behind = False
                return 'steps keep up with update_every ({:g} s) again: the last {} were on time'.format(
                    self.every, self.on_time)
            return None
        if seconds <= self.every:   # (the late steps can only have become fewer)
            return None
        late = [t for t in self.times if t > self.every]
        if len(late) < self.late:
            return None
        self.behind = True
        ordered = sorted(self.times)
        return ('steps take longer than update_every ({:g} s): {} of the last {} did (the slowest {:.1f} s, the median '
                '{:.2f} s), and the charts miss the seconds they overran; a larger update_every, or fewer charts '
                'in scope (charts_regex, charts_to_exclude), keeps up'.format(
                    self.every, len(late), len(self.times), ordered[-1], ordered[len(ordered) // 2]))
