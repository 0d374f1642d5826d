"""Transmitter keying around each message: none, a GPIO line, or a serial port's RTS/DTR.

``keying_for(config)`` validates an output's keying (a Pydantic union on ``kind``) and returns
its keyer. The worker makes one keyer per message: ``key(max_s)``, pre-roll, the message,
post-roll, ``unkey()``, ``close()``. Two watchdogs stand behind ``unkey``:

- in the process, a timer: a line keyed longer than ``max_s`` (the message's length plus its
  rolls and a margin) is dropped even if nobody calls ``unkey`` (a stuck output thread);
- outside it, the operating system when the worker dies:
  - serial: the line is asserted only while the port is open; the keyer sets HUPCL, so when
    the last descriptor closes (on any exit, ``kill -9`` included) the tty driver drops DTR and
    RTS. That unkeys when *asserted* means keyed (``active_high``, the default). With
    ``active_high=false`` the dropped line means keyed: the OS would key the transmitter, so
    such a port is driven inactive again by the playout supervisor when the worker dies.
  - GPIO: the Linux GPIO character device frees the line request of a dead process but
    leaves the pin at its last level (the kernel documents the value after release as
    unspecified; on a Raspberry Pi it stays). So the supervisor drives every GPIO keying line
    inactive when the worker exits, and the transmitter's own timeout (hardware) is the last
    line of defence.
"""

from __future__ import annotations

import contextlib
import logging
import termios
import threading
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from audio_control.playout.outputs import problems

log = logging.getLogger(__name__)


class KeyingError(OSError):
    """The transmitter's line cannot be opened or driven; the message names it."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_roll_s: float = Field(
        default=0.0, ge=0.0, le=10.0, description="keyed this long before the first sample"
    )
    post_roll_s: float = Field(
        default=0.0, ge=0.0, le=10.0, description="kept keyed this long after the last sample"
    )


class NoKeyingConfig(_Config):
    kind: Literal["none"] = "none"


class GpioKeyingConfig(_Config):
    kind: Literal["gpio"] = "gpio"
    pin: int = Field(ge=0, le=53, description="BCM GPIO number (GPIO17 is 17)")
    active_high: bool = Field(default=True, description="keyed = the pin high")
    backend: Literal["lgpio", "native"] = Field(
        default="lgpio", description="gpiozero pin factory: lgpio (any Pi, Pi 5 included)"
    )
    chip: int = Field(default=0, ge=0, le=16, description="gpiochip number (lgpio)")


class SerialKeyingConfig(_Config):
    kind: Literal["serial"] = "serial"
    port: str = Field(max_length=256, description="e.g. /dev/ttyUSB0")
    line: Literal["rts", "dtr"] = "rts"
    active_high: bool = Field(
        default=True, description="keyed = the line asserted (what the OS drops on exit)"
    )

    @field_validator("port")
    @classmethod
    def _port(cls, value: str) -> str:
        if not value.startswith("/dev/") or "\x00" in value or ".." in value.split("/"):
            raise ValueError("must be a device path under /dev, e.g. /dev/ttyUSB0")
        return value


KeyingConfig = Annotated[
    NoKeyingConfig | GpioKeyingConfig | SerialKeyingConfig, Field(discriminator="kind")
]
KEYING_CONFIG: TypeAdapter[KeyingConfig] = TypeAdapter(KeyingConfig)


class Keyer:
    """A transmitter line with a watchdog; subclasses say how the line is driven."""

    kind = "none"

    def __init__(self, config: _Config) -> None:
        self.pre_roll_s = config.pre_roll_s
        self.post_roll_s = config.post_roll_s
        self.keyed = False
        self.watchdog_fired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._keyed_at: float | None = None

    def _drive(self, keyed: bool) -> None:
        """Set the line: keyed or not."""

    def _release(self) -> None:
        """Give the line back to the system."""

    def key(self, max_s: float) -> dict[str, Any]:
        if max_s <= 0:
            raise ValueError("max_s must be positive")
        with self._lock:
            self._cancel()
            self._drive(True)
            self.keyed, self._keyed_at = True, time.monotonic()
            self._timer = threading.Timer(max_s, self._watchdog, args=(max_s,))
            self._timer.daemon = True
            self._timer.start()
        return {"keyed": True, "max_s": max_s}

    def unkey(self) -> dict[str, Any]:
        with self._lock:
            self._cancel()
            self._drive(False)
            held = time.monotonic() - self._keyed_at if self._keyed_at is not None else 0.0
            self.keyed, self._keyed_at = False, None
        return {"keyed": False, "keyed_s": round(held, 3), "watchdog": self.watchdog_fired}

    def close(self) -> None:
        try:
            if self.keyed:
                self.unkey()
        finally:
            with self._lock:
                self._cancel()
                self._release()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watchdog(self, max_s: float) -> None:
        with self._lock:
            if not self.keyed:
                return
            log.error("%s keying watchdog: keyed past %.1f s, unkeyed", self.kind, max_s)
            self.watchdog_fired = True
            try:
                self._drive(False)
            finally:
                self.keyed, self._timer = False, None


class NoKeyer(Keyer):
    kind = "none"


class GpioKeyer(Keyer):
    kind = "gpio"

    def __init__(self, config: GpioKeyingConfig, pin_factory: Any = None) -> None:
        super().__init__(config)
        from gpiozero import OutputDevice
        from gpiozero.exc import GPIOZeroError

        self._own_factory = pin_factory is None
        try:
            self._factory = pin_factory if pin_factory is not None else _factory(config)
            self._device = OutputDevice(
                config.pin,
                active_high=config.active_high,
                initial_value=False,
                pin_factory=self._factory,
            )
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            if self._own_factory and getattr(self, "_factory", None) is not None:
                with contextlib.suppress(Exception):
                    self._factory.close()
            raise KeyingError(f"GPIO{config.pin} cannot be used for keying: {exc}") from exc

    def _drive(self, keyed: bool) -> None:
        if keyed:
            self._device.on()
        else:
            self._device.off()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._device.close()
        if self._own_factory:
            with contextlib.suppress(Exception):
                self._factory.close()


def _factory(config: GpioKeyingConfig) -> Any:
    if config.backend == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory(chip=config.chip)
    from gpiozero.pins.native import NativeFactory

    return NativeFactory()


class SerialKeyer(Keyer):
    kind = "serial"

    def __init__(self, config: SerialKeyingConfig) -> None:
        super().__init__(config)
        import serial

        self.config = config
        port = serial.Serial()
        port.port = config.port
        # Set before open: pyserial applies them as it opens, so the line never shows keyed.
        port.rts = port.dtr = not config.active_high
        try:
            port.open()
        except (serial.SerialException, OSError) as exc:
            raise KeyingError(f"the serial port {config.port} cannot be opened: {exc}") from exc
        self._port = port
        try:
            attrs = termios.tcgetattr(port.fileno())
            attrs[2] |= termios.HUPCL  # the OS drops DTR/RTS when the port closes, on any exit
            termios.tcsetattr(port.fileno(), termios.TCSANOW, attrs)
        except termios.error as exc:
            port.close()
            raise KeyingError(f"{config.port} is not a terminal device: {exc}") from exc

    def _drive(self, keyed: bool) -> None:
        level = keyed == self.config.active_high
        try:
            if self.config.line == "rts":
                self._port.rts = level
            else:
                self._port.dtr = level
        except (OSError, ValueError) as exc:
            raise KeyingError(
                f"the {self.config.line.upper()} line of {self.config.port} cannot be set: {exc}"
            ) from exc

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._port.close()


def parse_keying(config: dict[str, Any]) -> KeyingConfig:
    return KEYING_CONFIG.validate_python(config)


def keying_for(config: dict[str, Any], *, pin_factory: Any = None) -> Keyer:
    """The keyer of a keying config (validated here; a bad one raises KeyingError)."""
    try:
        parsed = parse_keying(config)
    except ValidationError as exc:
        raise KeyingError(f"the output's keying is invalid: {problems(exc)}") from None
    if isinstance(parsed, GpioKeyingConfig):
        return GpioKeyer(parsed, pin_factory)
    if isinstance(parsed, SerialKeyingConfig):
        return SerialKeyer(parsed)
    return NoKeyer(parsed)


def make_safe(config: dict[str, Any]) -> str | None:
    """Drive an output's keying line inactive (after the worker died); what was done."""
    try:
        parsed = parse_keying(config)
    except ValidationError:
        return None
    if isinstance(parsed, NoKeyingConfig):
        return None
    if isinstance(parsed, SerialKeyingConfig) and parsed.active_high:
        return None  # the OS already dropped the line when the worker's port closed
    keyer = keying_for(config)
    try:
        keyer.unkey()
    finally:
        keyer.close()
    return f"{parsed.kind} line driven inactive"
