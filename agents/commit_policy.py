"""When a partition's work commits: the rule both runtimes follow, with no I/O in it.

A driver (agents/partition.py for the exactly-once worker, agents/faust_app.py for the
Faust runtime) reports what happened to one ticks partition: a batch was evaluated, with
outputs or without; time passed with no records; a commit finished or failed, and how; a
stop was asked; the partition was rebuilt from its committed state. The policy answers
with what to do (:class:`Do`) and keeps the partition's :class:`Phase`; a report that
makes no sense in the current phase is a defect and raises :class:`CommitPolicyError`.
Time is a number the driver passes in (``time.monotonic()``), so every transition is
tested without a broker or a clock (tests/agents/test_commit_policy.py).

The worker's rules (:data:`WORKER_RULES`):

- **Quiet batches are held.** A batch without outputs (its spreads throttled, an FX rate
  no instrument of the partition uses) does not commit while the partition's last
  commit is younger than ``hold_quiet_s``: its state and offset commit with the next
  transaction, or on their own once the last commit is that old. Exactly once holds: a
  held batch that never commits is evaluated again from the committed state, with the
  same result.
- **At least once, a batch's state rides with the next batch's outputs.** Its outputs
  are acknowledged first; the commit leaves the partition holding the state as it
  holds a quiet batch, and the next commit (the next batch's, or the hold's own after
  ``hold_quiet_s``, or a stop's) writes it: one round trip per batch instead of two.
- **The group's offset rides along at most every ``group_offsets_every_s``**, and on its
  own after ``group_offsets_idle_s`` without records: it is for lag monitoring only (the
  state holds the offset a partition resumes from), committed by the consumer once the
  state that resumes there is committed, off the batch's path.
- **A failed commit** is aborted and the partition rebuilt from its committed state when
  the broker may answer differently next time; a fenced producer drops the partition
  (another worker owns it); a refused right, records Kafka refuses for what they are,
  or a defect stop the worker.
- **A stop** lets the batch in flight finish, then commits what is held, with the
  group's offset; after a failure it commits nothing (the engine is ahead of the
  committed state).

The Faust runtime's rules (:data:`FAUST_RULES`) commit every batch, leave the group's
offset to Faust, and stop the worker on any failure (docs/guarantees.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from arbstream.agents.errors import AgentError


class CommitPolicyError(AgentError):
    """A report the policy cannot take in its current phase (a driver's defect)."""


class Phase(enum.Enum):
    """Where a partition's committed state stands against its evaluated one."""

    IDLE = "idle"  # everything evaluated is committed (the group's offset may be due)
    # quiet batches evaluated and not committed yet, or (at least once) a state due
    HOLDING = "holding"
    COMMITTING = "committing"  # a commit is in flight
    REBUILDING = "rebuilding"  # a commit failed: the engine is ahead of the committed state
    CLOSING = "closing"  # a stop was asked: what is due commits, then nothing more
    CLOSED = "closed"  # stopped; settled, or nothing to settle
    DROPPED = "dropped"  # another worker owns the partition
    FAILED = "failed"  # the worker stops


class Do(enum.Enum):
    """What the driver does next."""

    HOLD = "hold"  # keep the batch's state and offset for a later commit
    COMMIT = "commit"  # outputs, state (the held batches' too), next offset
    COMMIT_WITH_OFFSETS = "commit with the group's offset"
    COMMIT_OFFSETS = "commit the group's offset alone"
    WAIT = "wait"  # nothing is due
    REBUILD = "abort and rebuild"  # reload the committed state, with a new producer
    DROP = "drop the partition"
    STOP = "stop the worker"


class Failure(enum.Enum):
    """How a batch or a commit failed, as the driver classifies its error."""

    TRANSIENT = "transient"  # the broker away, a timeout: the same work may succeed later
    FENCED = "fenced"  # another producer with the partition's transactional id
    REFUSED = "refused"  # a right denied: the same work is denied again
    REJECTED = "rejected"  # records Kafka refuses for what they are
    DEFECT = "defect"  # an error that is not Kafka's


#: The commits a commit action starts.
COMMITS = frozenset({Do.COMMIT, Do.COMMIT_WITH_OFFSETS, Do.COMMIT_OFFSETS})
_DONE = frozenset({Phase.CLOSED, Phase.DROPPED, Phase.FAILED})


@dataclass(frozen=True)
class CommitRules:
    """A runtime's commit rules (see the module's docstring)."""

    #: A quiet batch is held while the last commit is younger than this (0: never held).
    hold_quiet_s: float
    #: The group's offset rides along at most this often (None: the runtime commits it).
    group_offsets_every_s: float | None
    #: ...and after this much time without records, on its own.
    group_offsets_idle_s: float
    #: A transient failure rebuilds the partition (False: it stops the worker).
    rebuild: bool


#: The exactly-once worker's (the hold: docs/performance.md, "Figures behind defaults").
WORKER_RULES = CommitRules(
    hold_quiet_s=1.0, group_offsets_every_s=1.0, group_offsets_idle_s=0.05, rebuild=True
)
#: The Faust runtime's: every batch commits; Faust commits the group's offsets itself.
FAUST_RULES = CommitRules(
    hold_quiet_s=0.0, group_offsets_every_s=None, group_offsets_idle_s=0.0, rebuild=False
)


class CommitPolicy:
    """The commit state of one ticks partition (see the module's docstring)."""

    def __init__(self, rules: CommitRules, now: float) -> None:
        """``now``: the time the partition's state was loaded (it counts as a commit)."""
        self.rules = rules
        self.phase = Phase.IDLE
        self.committed_at = now
        self.offsets_sent_at = now
        #: The group's offset is behind the committed state.
        self.offsets_due = False
        #: A stop was asked while a commit was in flight.
        self.stop_asked_in_flight = False
        self._commit: Do | None = None  # the commit in flight
        self._settle_held = False  # a stop found held batches: the last commit has them

    # -- the phases a driver asks about -------------------------------------------------

    @property
    def closing(self) -> bool:
        """Asked to stop, or done (closed, dropped, failed): no new batch starts."""
        return self.stop_asked_in_flight or self.phase is Phase.CLOSING or self.phase in _DONE

    # -- events -------------------------------------------------------------------------

    def evaluated(self, has_outputs: bool, now: float) -> Do:
        """A batch was evaluated: hold it, or commit it (with the held ones)."""
        self._expect("a batch evaluated", Phase.IDLE, Phase.HOLDING)
        if not has_outputs and now - self.committed_at < self.rules.hold_quiet_s:
            self.phase = Phase.HOLDING
            return Do.HOLD
        return self._begin(Do.COMMIT_WITH_OFFSETS if self._offsets_ride(now) else Do.COMMIT)

    def idle_wait(self, now: float) -> float | None:
        """How long the driver may wait for records before reporting ``time_passed``
        (None: as long as it likes)."""
        if self.phase is Phase.HOLDING:
            return max(0.0, self.committed_at + self.rules.hold_quiet_s - now)
        if self.phase is Phase.IDLE and self.offsets_due:
            return self.rules.group_offsets_idle_s
        return None

    def time_passed(self, now: float) -> Do:
        """No records came for ``idle_wait``: commit what is due, if anything."""
        self._expect("time passed", Phase.IDLE, Phase.HOLDING)
        if self.phase is Phase.HOLDING:
            if now - self.committed_at < self.rules.hold_quiet_s:
                return Do.WAIT
            return self._begin(Do.COMMIT_WITH_OFFSETS if self._offsets_ride(now) else Do.COMMIT)
        if self.offsets_due:
            return self._begin(Do.COMMIT_OFFSETS)
        return Do.WAIT

    def committed(self, now: float, state_due: bool = False) -> None:
        """The commit in flight succeeded; ``state_due``: its outputs were acknowledged
        and its state is still to be written (at least once, the state rides with the
        next batch's outputs), so the partition holds it as it holds a quiet batch."""
        self._expect("a commit succeeded", Phase.COMMITTING, Phase.CLOSING)
        if self._commit is None:
            raise CommitPolicyError("a commit succeeded, but none was in flight")
        if self._commit in (Do.COMMIT, Do.COMMIT_WITH_OFFSETS):
            self.committed_at = now
        if self._commit in (Do.COMMIT_WITH_OFFSETS, Do.COMMIT_OFFSETS):
            self.offsets_sent_at = now
            self.offsets_due = False
        elif self.rules.group_offsets_every_s is not None:
            self.offsets_due = True
        self._commit = None
        if self.phase is Phase.CLOSING:
            self.phase = Phase.CLOSED
        elif self.stop_asked_in_flight:
            self.phase = Phase.CLOSING  # what it held went with this commit
            self._settle_held = state_due  # ...but for its own state
            self.stop_asked_in_flight = False
        else:
            self.phase = Phase.HOLDING if state_due else Phase.IDLE

    def failed(self, failure: Failure) -> Do:
        """The batch or the commit in flight failed (nothing of it is committed)."""
        if self.phase in _DONE:
            raise CommitPolicyError(f"a failure reported in phase {self.phase.value}")
        self._commit = None
        if self.phase is Phase.CLOSING:
            # the last commit of a stop: the partition's next owner redoes the work
            self.phase = Phase.CLOSED
            return Do.WAIT
        if failure is Failure.FENCED:
            self.phase = Phase.DROPPED
            return Do.DROP
        if failure is Failure.TRANSIENT and self.stop_asked_in_flight:
            self.phase = Phase.CLOSED  # stopping anyway: no rebuild
            return Do.WAIT
        if failure is Failure.TRANSIENT and self.rules.rebuild:
            self.phase = Phase.REBUILDING
            return Do.REBUILD
        self.phase = Phase.FAILED
        return Do.STOP

    def rebuilt(self, now: float) -> None:
        """The partition continues from its committed state (the held batches are gone:
        the rebuilt engine evaluates them again)."""
        self._expect("a rebuild", Phase.REBUILDING)
        self.phase = Phase.IDLE
        self.committed_at = now

    def stop(self) -> None:
        """A stop was asked: no new batch starts; the one in flight finishes."""
        if self.phase is Phase.COMMITTING:
            self.stop_asked_in_flight = True
        elif self.phase in (Phase.IDLE, Phase.HOLDING):
            self._settle_held = self.phase is Phase.HOLDING
            self.phase = Phase.CLOSING
        elif self.phase is Phase.REBUILDING:
            self.phase = Phase.CLOSED  # nothing it evaluated may commit

    def settle(self) -> Do:
        """After ``stop``, once no batch is in flight: the last commit (what is held,
        with the group's offset when the runtime commits it), or WAIT when nothing is
        due or nothing may commit (closed, dropped, failed)."""
        if self.phase is not Phase.CLOSING or self._commit is not None:
            return Do.WAIT
        offsets = self.rules.group_offsets_every_s is not None
        if self._settle_held:
            self._commit = Do.COMMIT_WITH_OFFSETS if offsets else Do.COMMIT
        elif self.offsets_due and offsets:
            self._commit = Do.COMMIT_OFFSETS
        else:
            self.phase = Phase.CLOSED
            return Do.WAIT
        return self._commit

    # -- internal -----------------------------------------------------------------------

    def _begin(self, commit: Do) -> Do:
        self.phase = Phase.COMMITTING
        self._commit = commit
        return commit

    def _offsets_ride(self, now: float) -> bool:
        every = self.rules.group_offsets_every_s
        return every is not None and now - self.offsets_sent_at >= every

    def _expect(self, event: str, *phases: Phase) -> None:
        if self.phase not in phases:
            raise CommitPolicyError(f"{event} in phase {self.phase.value}")
