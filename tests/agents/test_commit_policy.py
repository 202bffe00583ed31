"""The commit policy of both runtimes (agents/commit_policy.py), without a broker or a
clock: every transition, every action, and every report it must refuse."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from arbstream.agents.commit_policy import (
    FAUST_RULES,
    WORKER_RULES,
    CommitPolicy,
    CommitPolicyError,
    CommitRules,
    Do,
    Failure,
    Phase,
)

HOLD_S = WORKER_RULES.hold_quiet_s
EVERY_S = WORKER_RULES.group_offsets_every_s
assert EVERY_S is not None


def worker(now: float = 100.0) -> CommitPolicy:
    return CommitPolicy(WORKER_RULES, now)


def committing(do_check: Do | None = None, now: float = 100.0) -> CommitPolicy:
    """A worker's policy with a commit in flight (of ``do_check``, when given)."""
    policy = worker(now)
    do = policy.evaluated(True, now)
    if do_check is not None:
        assert do is do_check
    return policy


# -- batches: hold or commit ------------------------------------------------------------


def test_a_quiet_batch_soon_after_a_commit_is_held() -> None:
    policy = worker(100.0)
    assert policy.evaluated(False, 100.5) is Do.HOLD
    assert policy.phase is Phase.HOLDING
    assert policy.evaluated(False, 100.9) is Do.HOLD  # held batches pile up


def test_a_batch_with_outputs_commits_and_takes_the_held_ones() -> None:
    policy = worker(100.0)
    policy.evaluated(False, 100.2)
    assert policy.evaluated(True, 100.4) is Do.COMMIT  # the group's offset is not due yet
    assert policy.phase is Phase.COMMITTING
    policy.committed(100.5)
    assert policy.phase is Phase.IDLE
    assert policy.committed_at == 100.5
    assert policy.offsets_due  # the group's offset is behind now


def test_a_state_still_due_after_a_commit_is_held_like_a_quiet_batch() -> None:
    """At least once: the commit's outputs were acknowledged, its state was not written
    yet; it rides with the next batch's commit, or commits on its own after the hold."""
    policy = committing(now=100.0)
    policy.committed(100.0, state_due=True)
    assert policy.phase is Phase.HOLDING
    assert policy.idle_wait(100.4) == pytest.approx(HOLD_S - 0.4)
    assert policy.time_passed(100.0 + HOLD_S / 2) is Do.WAIT
    assert policy.evaluated(False, 100.0 + HOLD_S / 2) is Do.HOLD  # a quiet batch joins it
    assert policy.time_passed(100.0 + HOLD_S) in (Do.COMMIT, Do.COMMIT_WITH_OFFSETS)
    policy.committed(100.0 + HOLD_S)  # the state written: nothing is due
    assert policy.phase is Phase.IDLE
    # the next batch with outputs takes it along instead
    policy = committing(now=100.0)
    policy.committed(100.0, state_due=True)
    assert policy.evaluated(True, 100.1) in (Do.COMMIT, Do.COMMIT_WITH_OFFSETS)


def test_a_stop_during_a_commit_that_leaves_a_state_due_settles_it() -> None:
    policy = committing(now=100.0)
    policy.stop()
    policy.committed(100.1, state_due=True)
    assert policy.phase is Phase.CLOSING
    assert policy.settle() in (Do.COMMIT, Do.COMMIT_WITH_OFFSETS)
    policy.committed(100.2)
    assert policy.phase is Phase.CLOSED


def test_a_quiet_batch_commits_once_the_last_commit_is_hold_quiet_s_old() -> None:
    policy = worker(100.0)
    assert policy.evaluated(False, 100.0 + HOLD_S) is not Do.HOLD


def test_the_group_offset_rides_along_at_most_every_group_offsets_every_s() -> None:
    policy = worker(100.0)
    assert policy.evaluated(True, 100.0 + EVERY_S / 2) is Do.COMMIT
    policy.committed(100.0 + EVERY_S / 2)
    assert policy.evaluated(True, 100.0 + EVERY_S) is Do.COMMIT_WITH_OFFSETS
    policy.committed(100.0 + EVERY_S)
    assert not policy.offsets_due
    assert policy.offsets_sent_at == 100.0 + EVERY_S
    assert policy.evaluated(True, 100.0 + EVERY_S * 1.5) is Do.COMMIT


# -- time passing -------------------------------------------------------------------------


def test_held_batches_wait_until_the_last_commit_is_hold_quiet_s_old() -> None:
    policy = worker(100.0)
    policy.evaluated(False, 100.3)
    assert policy.idle_wait(100.3) == pytest.approx(HOLD_S - 0.3)
    assert policy.time_passed(100.5) is Do.WAIT  # (woken early: still holding)
    assert policy.phase is Phase.HOLDING
    do = policy.time_passed(100.0 + HOLD_S)
    assert do is Do.COMMIT_WITH_OFFSETS  # a second since the last offsets, too
    policy.committed(100.0 + HOLD_S)
    assert policy.phase is Phase.IDLE
    assert policy.idle_wait(101.5) is None  # nothing due: wait for records


def test_the_group_offset_commits_alone_after_a_short_idle_time() -> None:
    policy = committing(Do.COMMIT, 100.0)
    policy.committed(100.1)
    assert policy.idle_wait(100.1) == WORKER_RULES.group_offsets_idle_s
    assert policy.time_passed(100.2) is Do.COMMIT_OFFSETS
    policy.committed(100.2)
    assert not policy.offsets_due
    assert policy.committed_at == 100.1  # an offsets-only commit commits no state
    assert policy.idle_wait(100.3) is None
    assert policy.time_passed(100.3) is Do.WAIT


def test_nothing_is_due_when_nothing_was_evaluated() -> None:
    policy = worker()
    assert policy.idle_wait(100.0) is None
    assert policy.time_passed(200.0) is Do.WAIT
    assert policy.phase is Phase.IDLE


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "do", "phase"),
    [
        (Failure.TRANSIENT, Do.REBUILD, Phase.REBUILDING),
        (Failure.FENCED, Do.DROP, Phase.DROPPED),
        (Failure.REFUSED, Do.STOP, Phase.FAILED),
        (Failure.REJECTED, Do.STOP, Phase.FAILED),
        (Failure.DEFECT, Do.STOP, Phase.FAILED),
    ],
)
def test_a_worker_failure_is_answered_by_its_kind(failure: Failure, do: Do, phase: Phase) -> None:
    for start in (committing, _holding, worker):  # a commit, a held batch, an idle wait
        policy = start()
        assert policy.failed(failure) is do
        assert policy.phase is phase
        assert policy.closing is (phase is not Phase.REBUILDING)


def _holding() -> CommitPolicy:
    policy = worker(100.0)
    policy.evaluated(False, 100.1)
    return policy


def test_a_rebuilt_partition_starts_over_from_its_committed_state() -> None:
    policy = _holding()
    policy.failed(Failure.TRANSIENT)
    policy.rebuilt(107.0)
    assert policy.phase is Phase.IDLE
    assert policy.committed_at == 107.0  # a fresh load counts as a commit
    assert policy.evaluated(False, 107.1) is Do.HOLD


@pytest.mark.parametrize("failure", list(Failure))
def test_the_faust_rules_stop_the_worker_on_any_failure_but_a_fence(failure: Failure) -> None:
    policy = CommitPolicy(FAUST_RULES, 0.0)
    assert policy.evaluated(True, 0.1) is Do.COMMIT
    assert policy.failed(failure) is (Do.DROP if failure is Failure.FENCED else Do.STOP)


def test_the_faust_rules_commit_every_batch_and_never_the_group_offset() -> None:
    policy = CommitPolicy(FAUST_RULES, 0.0)
    for t in (0.1, 0.2, 5.0):
        assert policy.evaluated(False, t) is Do.COMMIT  # never held, never with offsets
        policy.committed(t)
        assert not policy.offsets_due
        assert policy.idle_wait(t) is None
        assert policy.time_passed(t + 10) is Do.WAIT
    policy.stop()
    assert policy.settle() is Do.WAIT
    assert policy.phase is Phase.CLOSED


# -- stopping -----------------------------------------------------------------------------


def test_a_stop_commits_what_is_held_with_the_group_offset() -> None:
    policy = _holding()
    policy.stop()
    assert policy.closing
    assert policy.phase is Phase.CLOSING
    assert policy.settle() is Do.COMMIT_WITH_OFFSETS
    assert policy.settle() is Do.WAIT  # one last commit, not two
    policy.committed(100.4)
    assert policy.phase is Phase.CLOSED


def test_a_stop_while_idle_commits_the_group_offset_when_it_is_behind() -> None:
    policy = committing(Do.COMMIT)
    policy.committed(100.1)
    policy.stop()
    assert policy.settle() is Do.COMMIT_OFFSETS
    policy.committed(100.2)
    assert policy.phase is Phase.CLOSED


def test_a_stop_with_nothing_due_closes_at_once() -> None:
    policy = worker()
    policy.stop()
    assert policy.settle() is Do.WAIT
    assert policy.phase is Phase.CLOSED


def test_a_stop_during_a_commit_lets_it_finish_then_settles() -> None:
    policy = _holding()
    assert policy.evaluated(True, 100.2) is Do.COMMIT
    policy.stop()
    assert policy.closing  # no new batch starts
    assert policy.phase is Phase.COMMITTING
    assert policy.settle() is Do.WAIT  # not while the commit is in flight
    policy.committed(100.3)
    assert policy.phase is Phase.CLOSING
    # the held batch went with that commit: only the group's offset is left
    assert policy.settle() is Do.COMMIT_OFFSETS
    policy.committed(100.4)
    assert policy.phase is Phase.CLOSED


def test_a_transient_failure_of_the_commit_in_flight_during_a_stop_does_not_rebuild() -> None:
    policy = committing()
    policy.stop()
    assert policy.failed(Failure.TRANSIENT) is Do.WAIT
    assert policy.phase is Phase.CLOSED
    assert policy.settle() is Do.WAIT  # the engine is ahead of the committed state


def test_a_failed_last_commit_leaves_the_work_to_the_next_owner() -> None:
    policy = _holding()
    policy.stop()
    assert policy.settle() is Do.COMMIT_WITH_OFFSETS
    assert policy.failed(Failure.REFUSED) is Do.WAIT  # whatever the kind: it stops anyway
    assert policy.phase is Phase.CLOSED


def test_a_stop_during_a_rebuild_commits_nothing() -> None:
    policy = _holding()
    policy.failed(Failure.TRANSIENT)
    policy.stop()
    assert policy.phase is Phase.CLOSED
    assert policy.settle() is Do.WAIT


@pytest.mark.parametrize("failure", [Failure.FENCED, Failure.REFUSED, Failure.DEFECT])
def test_a_failed_or_dropped_partition_commits_nothing_on_stop(failure: Failure) -> None:
    policy = _holding()
    policy.failed(failure)
    policy.stop()
    assert policy.settle() is Do.WAIT
    assert policy.closing


# -- reports that make no sense -----------------------------------------------------------

EVENTS: dict[str, Callable[[CommitPolicy], object]] = {
    "evaluated": lambda p: p.evaluated(True, 200.0),
    "time_passed": lambda p: p.time_passed(200.0),
    "committed": lambda p: p.committed(200.0),
    "failed": lambda p: p.failed(Failure.TRANSIENT),
    "rebuilt": lambda p: p.rebuilt(200.0),
}


def _in_phase(phase: Phase) -> CommitPolicy:
    policy = worker(100.0)
    if phase is Phase.HOLDING:
        policy.evaluated(False, 100.1)
    elif phase is Phase.COMMITTING:
        policy.evaluated(True, 100.1)
    elif phase is Phase.REBUILDING:
        policy.failed(Failure.TRANSIENT)
    elif phase is Phase.CLOSING:
        policy.evaluated(False, 100.1)
        policy.stop()
    elif phase is Phase.CLOSED:
        policy.stop()
        policy.settle()
    elif phase is Phase.DROPPED:
        policy.failed(Failure.FENCED)
    elif phase is Phase.FAILED:
        policy.failed(Failure.DEFECT)
    assert policy.phase is phase
    return policy


#: The events each phase takes; every other event in that phase is a driver's defect.
VALID = {
    Phase.IDLE: {"evaluated", "time_passed", "failed"},
    Phase.HOLDING: {"evaluated", "time_passed", "failed"},
    Phase.COMMITTING: {"committed", "failed"},
    Phase.REBUILDING: {"rebuilt", "failed"},
    Phase.CLOSING: {"failed"},  # ("committed" once settle began a commit)
    Phase.CLOSED: set(),
    Phase.DROPPED: set(),
    Phase.FAILED: set(),
}


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("event", list(EVENTS))
def test_every_event_in_every_phase_is_taken_or_refused(phase: Phase, event: str) -> None:
    policy = _in_phase(phase)
    if event in VALID[phase]:
        EVENTS[event](policy)
    else:
        with pytest.raises(CommitPolicyError):
            EVENTS[event](policy)
        assert policy.phase is phase  # a refused report changes nothing


def test_a_commit_reported_with_none_in_flight_is_refused() -> None:
    policy = _in_phase(Phase.CLOSING)
    with pytest.raises(CommitPolicyError, match="none was in flight"):
        policy.committed(101.0)
    assert policy.settle() is Do.COMMIT_WITH_OFFSETS
    policy.committed(101.0)


def test_rules_without_a_hold_or_group_offsets_are_what_the_faust_runtime_uses() -> None:
    assert CommitRules(0.0, None, 0.0, rebuild=False) == FAUST_RULES
    assert WORKER_RULES.rebuild
