"""Payloads of what eas-monitor publishes: SAME decodes, input status and input levels.

Every ``same.*`` event stands for one *transmission*, not one receiver: when several monitored
inputs hear the same transmission (or it is repeated within the duplicate window) consumers
see one event whose ``inputs`` lists every input that heard it (eas-monitor's README explains
the aggregation).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas import streams

SAME_HEADER_TYPE = "same.header"
SAME_EOM_TYPE = "same.eom"
SAME_ATTENTION_TONE_TYPE = "same.attention_tone"
MONITOR_STATUS_TYPE = "monitor.status"
# A distinct type from any output-level event on the same stream, so readers can tell them apart.
AUDIO_INPUT_LEVEL_TYPE = "audio.input_level"

# eas-monitor's consumer group on same.events (it keeps the decode history).
EAS_MONITOR_GROUP = streams.EAS_MONITOR_GROUP


class InputKind(StrEnum):
    FILE = "file"
    PCM_PIPE = "pcm_pipe"
    PCM_TCP = "pcm_tcp"
    STREAM = "stream"
    DEVICE = "device"


class Hearing(BaseModel):
    """One input's reception of a transmission."""

    input_id: int
    input_name: str
    heard_at: AwareDatetime = Field(description="wall time the decoder reported it (UTC)")
    confidence: float = Field(ge=0, le=1)
    bursts: int = Field(ge=0, description="bursts received on this input")
    agreed: int = Field(ge=0, description="bursts whose own decode equals the voted text")
    start_s: float = Field(description="audio offset on this input (s since its stream began)")
    end_s: float
    started_at: AwareDatetime = Field(description="wall time of start_s")
    ended_at: AwareDatetime = Field(description="wall time of end_s")
    clip_id: str | None = Field(default=None, description="audio clip of this hearing, if kept")


class SameLocation(BaseModel):
    code: str = Field(description="PSSCCC")
    name: str = Field(description="plain-language name, e.g. 'Cuyahoga County, OH'")


class SameHeaderFields(BaseModel):
    originator: str
    originator_name: str
    event_code: str
    event_name: str
    locations: list[SameLocation]
    duration: str = Field(description="purge time TTTT as sent (HHMM)")
    duration_minutes: int
    issued: AwareDatetime = Field(description="JJJHHMM resolved to a UTC time near reception")
    purge_at: AwareDatetime = Field(description="issued + TTTT (UTC)")
    callsign: str = Field(description="LLLLLLLL as sent (8 characters in a standard header)")


class SameHeaderEvent(BaseModel):
    """``same.header``: one validated SAME header per transmission."""

    text: str = Field(description="the header as decoded, ZCZC-...-LLLLLLLL-")
    header: SameHeaderFields
    deviations: list[str] = Field(
        default_factory=list,
        description="how the header breaks the letter of 47 CFR 11.31 although its meaning is "
        "unambiguous (names in eas_schemas.same_codes.DEVIATIONS, e.g. callsign_length, "
        "purge_step); empty for a standard header",
    )
    deviation_notes: list[str] = Field(
        default_factory=list,
        description="plain-language text of each deviation, in the same order",
    )
    description: str = Field(description="plain-language text, as an EAS decoder displays it")
    confidence: float = Field(ge=0, le=1, description="best confidence over the hearings")
    bursts: int = Field(ge=0, description="most bursts received by one input")
    agreed: int = Field(ge=0, description="most bursts agreeing with the text on one input")
    inputs: list[Hearing] = Field(description="every input that heard it, first first")
    first_heard_at: AwareDatetime
    clip_id: str | None = Field(default=None, description="clip of the best hearing")


class SameEomEvent(BaseModel):
    """``same.eom``: end of message (``NNNN``)."""

    text: Literal["NNNN"] = "NNNN"
    confidence: float = Field(ge=0, le=1)
    bursts: int = Field(ge=0)
    inputs: list[Hearing]
    first_heard_at: AwareDatetime


class AttentionToneKind(StrEnum):
    BROADCAST = "broadcast"  # 853 + 960 Hz
    NWR = "nwr"  # 1050 Hz


class SameAttentionToneEvent(BaseModel):
    """``same.attention_tone``: an attention signal of at least one second."""

    kind: AttentionToneKind
    frequencies_hz: list[float] = Field(description="[853, 960] or [1050]")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_s: float = Field(ge=0)
    inputs: list[Hearing]
    first_heard_at: AwareDatetime


class InputState(StrEnum):
    STOPPED = "stopped"  # not wanted running
    STARTING = "starting"  # worker spawned, no audio yet
    RUNNING = "running"  # audio flowing
    CONNECTING = "connecting"  # the source is (re)connecting (stream, socket, pipe)
    STALLED = "stalled"  # no samples for the stall timeout; being restarted
    BACKOFF = "backoff"  # worker died; waiting before the next restart
    FAILED = "failed"  # cannot run as configured (file gone, no device); not retried
    FINISHED = "finished"  # a file input that is not looped played to its end
    STANDBY = "standby"  # another eas-monitor holds the input's lease; this copy waits


# ``monitor.input-lease:{input id}`` (under the bus namespace): the eas-monitor instance that
# captures and decodes the input. One holder per input, so a second copy started by mistake
# stands by instead of opening the device twice and publishing every level and hearing twice.
MONITOR_INPUT_LEASE_KEY = "monitor.input-lease"


class DecoderState(StrEnum):
    IDLE = "idle"
    RECEIVING = "receiving"  # a SAME burst is being received
    IN_MESSAGE = "in_message"  # header decoded, no EOM yet


class MonitorStatus(BaseModel):
    """``monitor.status``: one input's state, published when it changes."""

    input_id: int
    name: str
    kind: InputKind
    state: InputState
    running: bool
    signal_present: bool = Field(description="audio above the silence threshold")
    decoder_state: DecoderState
    samples_per_s: float = Field(ge=0, description="measured input rate over the last seconds")
    samples_total: int = Field(ge=0)
    pid: int | None = None
    last_header: str | None = None
    last_header_at: AwareDatetime | None = None
    restarts: int = Field(ge=0)
    errors: int = Field(ge=0)
    last_error: str | None = None
    since: AwareDatetime = Field(description="when the input entered this state")
    updated_at: AwareDatetime


class InputLevel(BaseModel):
    """``audio.input_level`` on ``audio.metrics``: one input's level, sent only on change."""

    input_id: int
    name: str
    peak_dbfs: float = Field(le=0, description="peak sample, dB relative to full scale")
    rms_dbfs: float = Field(le=0)
    silence: bool = Field(description="RMS below the silence threshold")
    clipping: bool = Field(description="samples at or near full scale in the window")
    window_s: float = Field(gt=0, description="measurement window")
    at: AwareDatetime
