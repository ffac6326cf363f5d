"""The job's waits, holds and retries, in seconds (on the clock) or steps, in one place, and
``Due``, when a look or a training is next due.

Each says what it is for where it is set; the step loop (``engine``) and its parts (``scope``,
``training_schedule``, ``restore``, ``startup``) read them as ``timings.NAME``, so a test can
shorten one for all of them.
"""
import collections

# steps between training attempts after a failed training (agent away, no data)
RETRY_STEPS = 30
RETRY_CAP_STEPS = 1800   # a training failing again and again with train_every_n 0 is tried this often at most
# the next full training with train_every_n 0 (the retired collector's "never retrain"): after the first
NEVER = float('inf')
# an agent that started this recently, with a job this new, lists its charts as its collectors
# start: none in scope yet is not yet an error
YOUNG_AGENT_SECONDS = 120
# how long a job started with saved models of a streamed child waits for its parent to list it
# (a restarted parent lists a child once it reconnects: 8-70 s on Debian's 1.37)
CHILD_BACK_SECONDS = 180
# how often a job that young looks at its agent's chart list again while none is in scope
SCOPE_WAIT_SECONDS = 5
# saved models of charts no longer listed are removed once older than this (or two windows)
PRUNE_SECONDS = 86400
# seconds between looks at the chart list for charts that appeared (trained at once), went
# away, or still lack a model (one waiting for history); counted on the clock, so python.d's
# failure penalty cannot stretch it, and in steps, so a replay (many steps a second) keeps it
DISCOVER_SECONDS = 60
# how long a step waits for the chart list it asked for; a list slower than that (thousands
# of charts, a busy agent) is taken up by the first step after it came, and the steps between
# score as usual
LIST_WAIT_SECONDS = 0.2
# the agent's clock moving more than this many update_every in one step is a gap in collection
# (the agent or this job stopped, a child reconnected, the host slept): the rows before it are
# not the last few seconds, so the features start again from the agent's stored rows
GAP_STEPS = 5
# the agent's newest collection standing still this long (and as many steps) is a child whose
# stream stopped, or collection that did: its last values are not scored as new ones
STILL_SECONDS = 15
# values that stood still this long and move on again: the agent is asked whether it restarted
PAUSE_SECONDS = 3
# the longest the step after a gap spends reading stored rows (an agent slow to send them):
# the charts not read by then score again once enough steps came in
REFILL_SECONDS = 5.0
# an agent whose step reads timed out is told to answer again once it has answered for this many
# seconds of steps in a row: a link that loses an answer every few seconds (Wi-Fi to a remote
# agent, a busy small box) is one problem, told once and once over, not two lines a time (a
# thousand lines an hour into the agent's log, on a small box's SD card)
SLOW_CLEAR_SECONDS = 60
# a job's training that has waited this long for another job's (one at a time in a process) says
# for whose, once: a job whose agent is slow to send its window holds up every other job's models
TRAINING_WAIT_TOLD_SECONDS = 30
# the charts of an agent that stopped answering keep their last values this long, then stay empty
STALE_SECONDS = 60
# no flag rises in the rows read while the job's own training runs, for at most this many steps
# (a training that takes longer, a big window on a slow box, no longer hides what happens meanwhile)
OWN_TRAINING_MAX_STEPS = 60
# an agent's first minute is its own start-up (collectors starting one by one, its database
# written, its clock synchronising): a job started with it (every restart) raises no flag on it
AGENT_START_SECONDS = 60
# a model still flagged this long (train_min_n_secs, at least) after the start-up of an agent its
# node booted with reads a level the reboot changed (the page cache emptied): it is retrained on
# the rows since only, and again each time they double, until a full training is due
REBOOT_RETRAIN_SECONDS = 60
# an agent that started within this long of its node's boot (system.uptime) started with it: a
# slow boot (fsck, cloud-init) starts it minutes in; a restart of the agent alone (an upgrade, or
# an incident that had the kernel kill it) changes no level the node keeps, and a flag up across
# it is left out of training as ever
BOOT_SECONDS = 900


Due = collections.namedtuple('Due', 'clock step')   # whichever comes first
