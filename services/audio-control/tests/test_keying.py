"""Transmitter keying: GPIO on gpiozero's mock pins (through the real playout worker), the
watchdog, and a serial port's RTS/DTR on a pseudo-terminal.

What a pty can show: Linux ptys have no modem-control lines (TIOCMGET/TIOCMBIS answer ENOTTY),
so the RTS/DTR changes are read at the ioctl pyserial makes, kept per descriptor by a thin
stand-in for the kernel's modem-line state; everything else is the real pty: the port is
opened and closed, HUPCL (the OS drops DTR/RTS on the last close) is read back with tcgetattr,
and a keying process killed with SIGKILL is seen to have released the port (the master reads
EIO once no process holds the other side open).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from audio_control.migrate import upgrade_url
from audio_control.playout.keying import (
    GpioKeyer,
    GpioKeyingConfig,
    KeyingError,
    keying_for,
    parse_keying,
)
from audio_control.playout.store import OutputSpec
from audio_control.settings import AudioControlSettings

from .test_playout_worker import Rig, add_output, items, queue, run_worker


@pytest.fixture
def rig(database_url: str, redis_url: str, bus_namespace: str) -> Rig:
    asyncio.run(upgrade_url(database_url))
    settings = AudioControlSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        lease_ttl_s=1.0,
        playout_block_s=0.05,
        heartbeat_interval_s=60,
    )
    return Rig(settings)


# ---- GPIO ------------------------------------------------------------------------------------


class LoggedGpioKeyer(GpioKeyer):
    """The real GPIO keyer, noting when it drives the line and what the pin then reads."""

    def __init__(self, config: GpioKeyingConfig, factory: MockFactory, log: list[Any]) -> None:
        super().__init__(config, factory)
        self.log, self.pin = log, factory.pin(config.pin)

    def _drive(self, keyed: bool) -> None:
        super()._drive(keyed)
        self.log.append(("key" if keyed else "unkey", time.monotonic(), self.pin.state))


def test_gpio_line_is_up_for_the_whole_message_and_down_after(rig: Rig) -> None:
    factory = MockFactory()
    pin = factory.pin(17)
    log: list[Any] = []
    config = {"kind": "gpio", "pin": 17, "pre_roll_s": 0.3, "post_roll_s": 0.2}

    def keyer(output: OutputSpec) -> GpioKeyer:
        return LoggedGpioKeyer(GpioKeyingConfig.model_validate(config), factory, log)

    class PinSink:
        def __init__(self) -> None:
            self.states: list[bool] = []

        def write(self, block: np.ndarray) -> None:
            self.states.append(bool(pin.state))
            log.append(("write", time.monotonic(), pin.state))

        def finish(self) -> dict[str, Any]:
            log.append(("finish", time.monotonic(), pin.state))
            return {}

        def abort(self) -> None:
            pass

        def level(self) -> tuple[float, float]:
            return (-6.0, -20.0)

    sinks: list[PinSink] = []

    def sink(output: OutputSpec, rate: int, label: str = "") -> PinSink:
        sinks.append(PinSink())
        return sinks[-1]

    add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=0.5)
    worker = rig.worker()
    worker.sinks, worker.keyers = sink, keyer  # type: ignore[assignment]
    run_worker(worker, lambda: items(rig)[item].state == "aired")
    assert pin.state is False or pin.state == 0
    (played,) = sinks
    assert played.states and all(played.states)  # keyed for every block
    kinds = [k for k, _, _ in log]
    assert kinds[0] == "key" and kinds[-1] == "unkey" and kinds[-2] == "finish"
    keyed_at = log[0][1]
    first_write = next(t for k, t, _ in log if k == "write")
    finished_at, unkeyed_at = log[-2][1], log[-1][1]
    assert first_write - keyed_at >= 0.3  # pre-roll before the first sample
    assert unkeyed_at - finished_at >= 0.2  # post-roll after the last
    assert log[0][2] and not log[-1][2]  # the pin itself went up, then down


def test_active_low_gpio_is_low_when_keyed() -> None:
    factory = MockFactory()
    keyer = keying_for({"kind": "gpio", "pin": 4, "active_high": False}, pin_factory=factory)
    pin = factory.pin(4)
    assert pin.state  # idle: high
    keyer.key(max_s=10)
    assert not pin.state
    keyer.close()  # closing a keyed line unkeys it first
    assert pin.state


def test_the_watchdog_unkeys_a_line_nobody_unkeys() -> None:
    factory = MockFactory()
    keyer = keying_for({"kind": "gpio", "pin": 22}, pin_factory=factory)
    pin = factory.pin(22)
    keyer.key(max_s=0.2)
    assert pin.state
    deadline = time.monotonic() + 10
    while pin.state and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pin.state and keyer.watchdog_fired and not keyer.keyed
    assert keyer.unkey()["watchdog"] is True
    keyer.close()


def test_unkey_in_time_stops_the_watchdog() -> None:
    factory = MockFactory()
    keyer = keying_for({"kind": "gpio", "pin": 23}, pin_factory=factory)
    keyer.key(max_s=0.2)
    first = keyer._timer
    assert first is not None
    keyer.unkey()
    keyer.key(max_s=30)
    # The first watchdog's thread ends either cancelled or having fired: joined, it has done
    # whatever it was going to do (a barrier instead of sleeping past its max_s).
    first.join(10)
    assert not first.is_alive()
    assert factory.pin(23).state and keyer.keyed and not keyer.watchdog_fired
    keyer.close()
    assert not factory.pin(23).state


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"kind": "gpio", "pin": 99}, "less than or equal to 53"),
        ({"kind": "serial", "port": "COM1"}, "under /dev"),
        ({"kind": "serial", "port": "/dev/ttyS0", "line": "cts"}, "'rts' or 'dtr'"),
        ({"kind": "relay"}, "does not match"),
        ({"kind": "none", "pre_roll_s": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_keying_is_refused(config: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_keying(config)
    with pytest.raises(KeyingError, match="keying is invalid"):
        keying_for(config)


# ---- serial on a pty -------------------------------------------------------------------------

_MODEM = """
import fcntl as _fcntl, struct as _struct, termios as _termios
import serial.serialposix as _sp

class _Lines:
    # A pty has no modem lines: keep pyserial's TIOCMBIS/TIOCMBIC per descriptor.
    state = {}
    def ioctl(self, fd, request, arg=0, *rest):
        if request in (_termios.TIOCMBIS, _termios.TIOCMBIC, _termios.TIOCMGET):
            bits = _struct.unpack("I", arg)[0] if isinstance(arg, bytes) else 0
            now = self.state.get(fd, 0)
            if request == _termios.TIOCMBIS:
                self.state[fd] = now | bits
            elif request == _termios.TIOCMBIC:
                self.state[fd] = now & ~bits
            return _struct.pack("I", self.state.get(fd, 0))
        return _fcntl.ioctl(fd, request, arg, *rest)
    def __getattr__(self, name):
        return getattr(_fcntl, name)

LINES = _Lines()
_sp.fcntl = LINES
"""


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)  # only the keyer holds the port open
    try:
        yield master, name
    finally:
        os.close(master)


@pytest.fixture
def modem_lines() -> Any:
    scope: dict[str, Any] = {}
    import serial.serialposix as sp

    real = sp.fcntl
    exec(_MODEM, scope)  # the stand-in above, installed for this test only
    yield scope["LINES"]
    sp.fcntl = real


def test_serial_rts_follows_keying_and_hupcl_is_set(pty: tuple[int, str], modem_lines: Any) -> None:
    master, name = pty
    keyer = keying_for({"kind": "serial", "port": name, "line": "rts"})
    fd = keyer._port.fileno()  # type: ignore[attr-defined]
    assert termios.tcgetattr(master)[2] & termios.HUPCL  # the OS drops the lines on close
    assert modem_lines.state.get(fd, 0) & (termios.TIOCM_RTS | termios.TIOCM_DTR) == 0
    keyer.key(max_s=10)
    assert modem_lines.state[fd] & termios.TIOCM_RTS
    assert not modem_lines.state[fd] & termios.TIOCM_DTR  # the other line stays down
    keyer.unkey()
    assert not modem_lines.state[fd] & termios.TIOCM_RTS
    keyer.close()


def test_serial_dtr_active_low(pty: tuple[int, str], modem_lines: Any) -> None:
    _, name = pty
    keyer = keying_for({"kind": "serial", "port": name, "line": "dtr", "active_high": False})
    fd = keyer._port.fileno()  # type: ignore[attr-defined]
    assert modem_lines.state[fd] & termios.TIOCM_DTR  # idle: asserted
    keyer.key(max_s=10)
    assert not modem_lines.state[fd] & termios.TIOCM_DTR
    keyer.close()
    assert modem_lines.state[fd] & termios.TIOCM_DTR


def test_on_a_pty_without_the_stand_in_the_line_cannot_be_set(pty: tuple[int, str]) -> None:
    _, name = pty
    keyer = keying_for({"kind": "serial", "port": name})
    with pytest.raises(KeyingError, match="RTS line"):
        keyer.key(max_s=5)  # ENOTTY: an error, never a silent "keyed"
    keyer.close()


def test_a_missing_port_is_a_clear_error() -> None:
    with pytest.raises(KeyingError, match="/dev/ttyEAS-missing cannot be opened"):
        keying_for({"kind": "serial", "port": "/dev/ttyEAS-missing"})


_KEYED_AND_WAITING = _MODEM + textwrap.dedent(
    """
    import sys, time
    from audio_control.playout.keying import keying_for
    keyer = keying_for({"kind": "serial", "port": sys.argv[1], "line": "rts"})
    keyer.key(max_s=600)
    print("keyed", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_keying_process_releases_the_port(pty: tuple[int, str]) -> None:
    master, name = pty
    proc = subprocess.Popen(
        [sys.executable, "-c", _KEYED_AND_WAITING, name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "keyed"
        assert termios.tcgetattr(master)[2] & termios.HUPCL
        readable, _, _ = select.select([master], [], [], 0)
        assert readable == []  # the port is held open by the keying process
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Hung up: no process holds the port, so a real UART has dropped DTR and RTS (HUPCL).
    readable, _, _ = select.select([master], [], [], 5)
    assert readable == [master]
    with pytest.raises(OSError) as caught:
        os.read(master, 1)
    assert caught.value.errno == 5  # EIO: the other side is closed


def test_tiocmget_on_a_pty_is_really_unsupported(pty: tuple[int, str]) -> None:
    """Why the stand-in exists (if a kernel ever grows pty modem lines, use them instead)."""
    _, name = pty
    fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
    try:
        with pytest.raises(OSError):
            fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0))
    finally:
        os.close(fd)
    assert Path(name).exists()


def test_make_safe_drives_an_active_low_serial_line_inactive(
    pty: tuple[int, str], modem_lines: Any
) -> None:
    from audio_control.playout.keying import make_safe

    _, name = pty
    assert make_safe({"kind": "none"}) is None
    assert make_safe({"kind": "serial", "port": name}) is None  # the OS already dropped it
    note = make_safe({"kind": "serial", "port": name, "line": "rts", "active_high": False})
    assert note == "serial line driven inactive"
    assert any(s & termios.TIOCM_RTS for s in modem_lines.state.values())  # idle = asserted
