"""Payloads of what audio-control's playout publishes: ``playout.*`` per item and output, and
output levels on ``audio.metrics``.

A playout item is one message to put on air (a relay decision's message, or an operator's
origination sent to air). It is queued once, and airs on every enabled output; each output
reports for itself (``output`` is set): started, then finished, interrupted (an EAN preempted
it, or an operator stopped it: its EOM was still sent) or failed (the output broke; the others
go on). ``playout.queued`` and the item's cancellation carry no output.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas.relay_events import PrecedenceClass

PLAYOUT_QUEUED_TYPE = "playout.queued"
PLAYOUT_STARTED_TYPE = "playout.started"
PLAYOUT_FINISHED_TYPE = "playout.finished"
PLAYOUT_INTERRUPTED_TYPE = "playout.interrupted"
PLAYOUT_FAILED_TYPE = "playout.failed"
PLAYOUT_CANCELLED_TYPE = "playout.cancelled"
AUDIO_OUTPUT_LEVEL_TYPE = "audio.output_level"

PLAYOUT_TYPES = (
    PLAYOUT_QUEUED_TYPE,
    PLAYOUT_STARTED_TYPE,
    PLAYOUT_FINISHED_TYPE,
    PLAYOUT_INTERRUPTED_TYPE,
    PLAYOUT_FAILED_TYPE,
    PLAYOUT_CANCELLED_TYPE,
)


class ItemState(StrEnum):
    QUEUED = "queued"  # waiting for its air time and its turn
    PLAYING = "playing"
    AIRED = "aired"  # finished on at least one output
    INTERRUPTED = "interrupted"  # stopped on air (EOM sent); requeued if the setting says so
    FAILED = "failed"  # no output could air it
    CANCELLED = "cancelled"  # left the queue before it played (Cancel, Update, operator)


class PlayoutEvent(BaseModel):
    """``playout.*``: one item, on one output or (queued, cancelled) for all of them."""

    item_id: int = Field(description="audio-control's playout item id")
    message_id: int
    decision_id: int | None = Field(description="the relay decision, None for an origination")
    header: str
    event_code: str
    precedence: int = Field(ge=0, description="air order: lower first (0 = EAN)")
    precedence_class: PrecedenceClass
    state: ItemState = Field(description="the item's state after this event")
    output: str | None = Field(default=None, description="the output's name, if per output")
    output_kind: str | None = None
    air_at: AwareDatetime | None = Field(default=None, description="not before this time")
    at: AwareDatetime
    duration_s: float | None = Field(default=None, description="what was played, seconds")
    reason: str = Field(description="one plain sentence")
    actor: str | None = Field(default=None, description="who stopped, skipped or resent it")
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class OutputLevel(BaseModel):
    """``audio.output_level`` on ``audio.metrics``: an output's level while it plays."""

    output: str = Field(description="the output's name")
    peak_dbfs: float = Field(le=0)
    rms_dbfs: float = Field(le=0)
    playing: bool
    item_id: int | None = None
    window_s: float = Field(gt=0)
    at: AwareDatetime


# ---- commands to the playout worker -----------------------------------------------------------

PLAYOUT_COMMAND_TYPE = "playout.command"
# Redis keys under the bus namespace: the worker's answer to one command (a list it pushes to,
# the API blocks on), and each output's lease (the worker instance that may play on it).
PLAYOUT_REPLY_KEY = "playout.reply"
PLAYOUT_LEASE_KEY = "playout.lease"
# ``playout.worker:{instance}``, kept alive by each running worker: a command with no worker
# to answer it is refused at once instead of waiting out its timeout.
PLAYOUT_WORKER_KEY = "playout.worker"
# ``playout.level:{output id}``: the output's last ``OutputLevel`` (JSON), set by the worker
# each time it publishes one, read by the outputs API.
PLAYOUT_LEVEL_KEY = "playout.level"


class CommandKind(StrEnum):
    STOP = "stop"  # end what is on air: EOM on every output, then the queue goes on
    SKIP = "skip"  # the same, and the item is not requeued
    TEST_TONE = "test_tone"  # a 1 kHz tone on one output (nothing on air)
    KEY = "key"  # key one output's transmitter for a test (nothing on air)
    UNKEY = "unkey"
    STATUS = "status"  # what the worker holds and plays
    # From audio-control itself, published with the commit of an EAN's decision: cut what is on
    # air below ``precedence`` now (EOM, requeued by setting) instead of once the EAN's message
    # is composed; the worker does not answer it.
    PREEMPT = "preempt"


class PlayoutCommand(BaseModel):
    """``playout.command`` on ``playout.commands``: an operator's command to the worker."""

    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    kind: CommandKind
    output: str | None = Field(default=None, description="the output it is for, if one")
    item_id: int | None = Field(default=None, description="stop/skip only this item")
    seconds: float | None = Field(default=None, gt=0, le=60)
    precedence: int | None = Field(
        default=None, ge=0, description="preempt: cut what airs with a higher number than this"
    )
    decision_id: int | None = Field(default=None, description="preempt: the decision that cuts")
    actor: str
    at: AwareDatetime


class PlayoutReply(BaseModel):
    """The worker's answer, after it acted: what happened, not that a command was sent."""

    command_id: str
    ok: bool
    detail: str
    state: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
