"""Monitored input configuration: one model per kind, and the checks that need the machine
(the file exists and is WAV/FLAC, the pipe is a FIFO, there is a sound device)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import soundfile as sf
from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
)

from eas_schemas.monitor_events import InputKind
from servicekit.outbound import has_userinfo, is_public, strip_userinfo

ASOUND_CARDS = Path("/proc/asound/cards")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileConfig(_Config):
    kind: Literal[InputKind.FILE] = InputKind.FILE
    path: str = Field(min_length=1, max_length=4096, description="WAV or FLAC file")
    loop: bool = Field(default=False, description="start over at the end")
    realtime: bool = Field(default=True, description="pace reading at real time")


class PcmPipeConfig(_Config):
    kind: Literal[InputKind.PCM_PIPE] = InputKind.PCM_PIPE
    path: str = Field(min_length=1, max_length=4096, description="named pipe (FIFO)")
    rate: int = Field(ge=8000, le=96000, description="samples per second, s16le mono")


class PcmTcpConfig(_Config):
    kind: Literal[InputKind.PCM_TCP] = InputKind.PCM_TCP
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int = Field(ge=1, le=65535)
    rate: int = Field(ge=8000, le=96000, description="samples per second, s16le mono")


class StreamConfig(_Config):
    kind: Literal[InputKind.STREAM] = InputKind.STREAM
    url: AnyUrl = Field(
        description="http:// or https:// stream (Icecast, HTTP audio). Credentials given as "
        "user:password@ are kept server-side: views show the URL without them and "
        "`credentials: true`; an update with the same origin and no credentials keeps them"
    )
    allow_private: bool = Field(
        default=False,
        description="allow the host (and any redirect) to be a private, loopback or "
        "link-local address, e.g. an Icecast server on the LAN",
    )

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: AnyUrl) -> AnyUrl:
        # ffmpeg would also open file:, concat:, pipe: ... URLs: a door to the local disk.
        if url.scheme not in ("http", "https"):
            raise ValueError(f"URL scheme {url.scheme!r} is not allowed: use http or https")
        if not url.host:
            raise ValueError("URL has no host")
        return url

    def literal_address_problem(self) -> str | None:
        """A literal private address without ``allow_private`` (a name is checked at each
        connection). Checked on what the API receives, not on stored rows: a configuration
        saved before this rule existed still loads, and is refused when it connects."""
        host = (self.url.host or "").strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if not self.allow_private and not is_public(address):
            return f"{host} is a private or local address: set allow_private to monitor it"
        return None

    credentials: bool = Field(
        default=False,
        description="read-only, in views: credentials are stored for this URL (ignored on input)",
    )

    @property
    def has_credentials(self) -> bool:
        return has_userinfo(str(self.url))

    def public(self) -> StreamConfig:
        """The configuration as a view shows it: the URL without its credentials."""
        return self.model_copy(
            update={
                "url": AnyUrl(strip_userinfo(str(self.url))),
                "credentials": self.has_credentials,
            }
        )

    def keeping_credentials_of(self, old: StreamConfig) -> StreamConfig:
        """An update that repeats the shown URL (same origin, no credentials) keeps the stored
        credentials: they are write-only, so a client cannot send them back."""
        if self.has_credentials or not old.has_credentials:
            return self
        mine, theirs = urlsplit(str(self.url)), urlsplit(str(old.url))
        if (mine.scheme, mine.hostname, mine.port) != (theirs.scheme, theirs.hostname, theirs.port):
            return self
        userinfo = theirs.netloc.rsplit("@", 1)[0]
        return self.model_copy(
            update={"url": AnyUrl(urlunsplit(mine._replace(netloc=f"{userinfo}@{mine.netloc}")))}
        )


class DeviceConfig(_Config):
    kind: Literal[InputKind.DEVICE] = InputKind.DEVICE
    device: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_:,.=\-]+$",
        description="ALSA capture device, e.g. default or hw:1,0",
    )
    rate: int = Field(default=22050, ge=8000, le=96000)


InputConfig = Annotated[
    FileConfig | PcmPipeConfig | PcmTcpConfig | StreamConfig | DeviceConfig,
    Field(discriminator="kind"),
]
config_adapter: TypeAdapter[InputConfig] = TypeAdapter(InputConfig)


class InputConfigError(ValueError):
    """The configuration cannot work on this machine; ``str()`` says why."""


def sound_cards() -> list[str]:
    """ALSA cards of this machine (lines of /proc/asound/cards naming a card)."""
    try:
        text = ASOUND_CARDS.read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line[:3].strip().isdigit()]


def _ffmpeg_has_alsa(ffmpeg: str) -> bool:
    exe = shutil.which(ffmpeg)
    if exe is None:
        return False
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-devices"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == ["alsa"] for line in out.splitlines() if line.strip())


def check_machine(cfg: InputConfig, *, ffmpeg: str = "ffmpeg") -> None:
    """Raise :class:`InputConfigError` if ``cfg`` cannot work here."""
    if isinstance(cfg, FileConfig):
        check_audio_file(Path(cfg.path))
    elif isinstance(cfg, PcmPipeConfig):
        path = Path(cfg.path)
        try:
            mode = path.stat().st_mode
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = getattr(exc, "strerror", None) or exc
            raise InputConfigError(f"named pipe {path}: {reason}") from exc
        if not stat.S_ISFIFO(mode):
            raise InputConfigError(f"{path} is not a named pipe (create one with mkfifo)")
        if not os.access(path, os.R_OK):
            raise InputConfigError(f"named pipe {path} is not readable by the service")
    elif isinstance(cfg, StreamConfig):
        if shutil.which(ffmpeg) is None:
            raise InputConfigError(f"stream inputs need ffmpeg, and {ffmpeg!r} is not installed")
    elif isinstance(cfg, DeviceConfig):
        cards = sound_cards()
        if not cards:
            raise InputConfigError(
                "this machine has no sound capture device: no ALSA sound card is listed in "
                f"{ASOUND_CARDS}"
            )
        if not _ffmpeg_has_alsa(ffmpeg):
            raise InputConfigError(f"{ffmpeg!r} is missing or was built without ALSA input")


def check_audio_file(path: Path) -> None:
    if not path.is_absolute():
        raise InputConfigError(f"file path {str(path)!r} must be absolute")
    if not path.is_file():
        raise InputConfigError(f"file {path} does not exist or is not a regular file")
    if not os.access(path, os.R_OK):
        raise InputConfigError(f"file {path} is not readable by the service")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise InputConfigError(f"file {path} is not a readable WAV or FLAC file") from exc
    if info.format not in ("WAV", "WAVEX", "FLAC"):
        raise InputConfigError(f"file {path} is {info.format}, not WAV or FLAC")
    if info.samplerate < 6000:
        raise InputConfigError(f"file {path} is sampled at {info.samplerate} Hz; SAME needs 6000+")
    if info.frames == 0:
        raise InputConfigError(f"file {path} holds no audio")
