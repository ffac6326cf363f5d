"""The flagged steps each model's next training leaves out, kept as spans of agent time.

Trained on an incident's steps, the next model takes that incident for normal: a CPU pinned
for a minute is flagged as it starts, then reads 90-99 % while it lasts. So each flag's whole
episode is kept (``episode_steps``) as ``[first, last]`` spans per model (``remember``), spans
no training window reaches any more are dropped (``in_reach``), and the spans are written
beside the saved models (``FlagFile``) so that a restarted job leaves them out too.
"""
import numpy as np

from . import persist

# after a flag, the steps left out of the next training go on while the chart reads at least
# this probability (one normal step in ten does), through dips of up to EPISODE_GAP steps
EPISODE_RANK = 0.9
EPISODE_GAP = 2
# the flagged spans are written beside the models when a flag rises, and while one lasts at
# most this often (agent seconds): python.d.plugin is stopped by a signal, never by a close()
FLAGS_SAVE_SECONDS = 15

NEW, GROWN = 'new', 'grown'


def episode_steps(episodes, ids, flags, rank, training_rows):
    """The models whose step at this time is to be left out: those flagged, and those whose
    flag's episode goes on (``rank`` at least EPISODE_RANK, through dips of up to EPISODE_GAP
    steps). ``episodes`` (model id -> steps under EPISODE_RANK since the episode last read
    unusual) is updated in place; episodes end during the job's own training (``training_rows``)."""
    flagged = np.nonzero(flags)[0].tolist()
    out = [ids[k] for k in flagged]
    for model_id in out:
        episodes[model_id] = 0
    if len(episodes) <= len(flagged):
        return out
    now = set(out)
    where = {m: k for k, m in enumerate(ids)}
    for model_id in [m for m in episodes if m not in now]:
        k = where.get(model_id)
        if k is None or training_rows:
            del episodes[model_id]
        elif rank[k] >= EPISODE_RANK:
            out.append(model_id)
            episodes[model_id] = 0
        elif episodes[model_id] >= EPISODE_GAP:
            del episodes[model_id]
        else:
            episodes[model_id] += 1
    return out


def remember(flagged, model_id, t, every):
    """Add agent time ``t`` to the model's spans (``every``: seconds a step): NEW when a span
    began, GROWN when the last one grew, None when ``t`` was already in it (the rows a new
    dimension brought reach a little ahead)."""
    spans = flagged.setdefault(model_id, [])
    if spans and spans[-1][0] <= t <= spans[-1][1]:
        return None
    if spans and 0 <= t - spans[-1][1] <= (EPISODE_GAP + 1) * every:   # not after a clock set back
        spans[-1][1] = t
        return GROWN
    if any(first <= t <= last for first, last in spans):
        # the clock set back over a time already left out (a VM restored again, a replay that
        # loops): a copy of its span would be kept, and written, for every pass
        return None
    spans.append([t, t])
    return NEW


def cut_at(spans, end):
    """``spans`` without what follows ``end`` where a span runs on past it: the end of the
    start-up of an agent that booted with its node, where a level the reboot changed (the page
    cache emptied, the services restarted) is the model's new normal, not an incident for its
    training to leave out; a flag that rose after it is left out as ever."""
    return [(first, min(last, end) if first <= end else last) for first, last in spans]


def in_reach(flagged, oldest):
    """Drop (in place) the spans that end before ``oldest``, the start of the furthest training
    window, and the models left without one; the rest as ``{model id: [(first, last)]}``."""
    out = {}
    for model_id, spans in list(flagged.items()):
        spans[:] = [sp for sp in spans if sp[1] >= oldest]
        if spans:
            out[model_id] = [tuple(sp) for sp in spans]
        else:
            del flagged[model_id]
    return out


class FlagFile:
    """The spans' file in ``models_dir``: written when a span began, else while spans grow at
    most every FLAGS_SAVE_SECONDS; a write that fails is told once (``problems``) and retried."""

    def __init__(self, models_dir, problems, host=None):
        self.models_dir = models_dir
        self.host = host   # the agent whose times the spans are
        self.agent = None  # and its machine GUID, once read (Engine._read_agent)
        self.problems = problems
        self.unsaved = None   # NEW (a span began), GROWN, or None: what the file lacks
        self.saved_at = 0.0   # agent time of the last write

    def changed(self, how):
        """Note a change ``remember`` returned."""
        if how == NEW:
            self.unsaved = NEW
        elif how == GROWN:
            self.unsaved = self.unsaved or GROWN

    def due(self, now):
        """Whether the spans are to be written at agent time ``now``."""
        if not self.models_dir or not self.unsaved:
            return False
        return self.unsaved == NEW or not 0 <= now - self.saved_at < FLAGS_SAVE_SECONDS

    def load(self):
        """``(spans, reason not used)``: a file that cannot be read steers no training, and
        is never a reason not to start."""
        try:
            return persist.load_flagged(self.models_dir, self.host, self.agent)
        except Exception as e:
            return {}, repr(e)

    def write(self, flagged, now):
        """Write ``flagged`` (already cut to what a training reaches)."""
        self.saved_at = now
        try:
            persist.save_flagged(self.models_dir, flagged, self.host, self.agent)
        except Exception as e:
            # the reason without the temporary file's random name, so that the line is said once
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            self.problems.report('save-flags', 'cannot save the flagged steps in {} (models_dir): {} (a restarted '
                                               'job would train on them)'.format(self.models_dir, why))
            self.unsaved = GROWN   # tried again FLAGS_SAVE_SECONDS on, or when a new span begins
            return
        self.unsaved = None
        self.problems.clear('save-flags', 'the flagged steps are saved again')
