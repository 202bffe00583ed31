"""What a failed batch of a ticks partition means: its errors, its kind for the commit
policy (agents/commit_policy.py), and the line a worker stops with, saying where a worker
resumes once the cause is fixed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from arbstream.agents.commit_policy import CommitPolicyError, Failure
from arbstream.agents.errors import AgentError
from arbstream.agents.outputs import DeliveryError, WholeBatchError

if TYPE_CHECKING:
    from arbstream.agents.partition import PartitionProcessor


class PartitionLostError(AgentError):
    """Another worker owns the partition now (this worker's producer was fenced)."""


class BatchDeliveryError(AgentError):
    """Kafka refused part of a batch's outputs; the transaction was aborted."""

    def __init__(
        self,
        tp: TopicPartition,
        start: int,
        end: int,
        error: DeliveryError,
        state: bool = False,
        resume: int | None = None,
    ) -> None:
        """``state``: the outputs were acknowledged, and the state that follows them was
        not (at least once); ``resume``: where the committed state resumes, when it is
        before ``start`` (at least once, a state not yet written)."""
        if state:
            message = (
                f"partition {tp.partition}: the state of ticks offsets {start}-{end - 1} was "
                f"not accepted ({error}); their outputs were, and are produced again, with "
                "the same seq, from the state before them"
            )
        else:
            message = (
                f"partition {tp.partition}: the outputs of ticks offsets {start}-{end - 1} "
                f"were not accepted ({error}); nothing of those ticks was committed"
            )
        super().__init__(message)
        self.start = start
        self.resume = start if resume is None else resume
        self.permanent = error.permanent


def failure_of(error: Exception, refused: bool) -> Failure:
    """What kind of failure a batch's ``error`` is, for its commit policy; ``refused``:
    it is (or was caused by) Kafka denying a right."""
    if isinstance(error, PartitionLostError):
        return Failure.FENCED
    if isinstance(error, CommitPolicyError) or not isinstance(
        error, (KafkaError, AgentError, OSError, TimeoutError)
    ):
        return Failure.DEFECT  # not a broker hiccup
    if refused:
        return Failure.REFUSED
    if isinstance(error, BatchDeliveryError) and error.permanent:
        return Failure.REJECTED
    if isinstance(error, WholeBatchError):
        return Failure.REJECTED  # the same state would not fit again
    return Failure.TRANSIENT


def stop_reason(error: Exception, refused: str | None, processor: PartitionProcessor) -> Exception:
    """The error a worker stops with when a batch of ``processor`` failed with ``error``
    (``refused``: the line saying which right Kafka denied): where to resume, once the
    cause is fixed."""
    p = processor.tp.partition
    if refused is not None:
        # A right lost while running: a rebuild would be refused the same way.
        start, end = processor.uncommitted
        if end > start:
            return AgentError(
                f"partition {p}: {refused}; nothing of ticks offsets {start}-{end - 1} was "
                f"committed; once granted, a worker resumes at ticks offset {start} of "
                f"partition {p}"
            )
        return AgentError(
            f"partition {p}: {refused}; once granted, a worker resumes at ticks offset "
            f"{start} of partition {p}"
        )
    if isinstance(error, BatchDeliveryError) and error.permanent:
        # A rebuild would send the same records again, and skipping them would lose them.
        return AgentError(
            f"{error}. Kafka refuses it whatever the worker does, so the worker stops; once "
            f"the cause is fixed, a worker resumes at ticks offset {error.resume} of "
            f"partition {p}"
        )
    return error
