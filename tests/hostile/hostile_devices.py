"""Hostile device models: each does to the harness what a broken or malicious implementation could.

Every factory here returns the reference device with one function that
misbehaves the first time the suite hands it a frame (``receive``), or at
construction.  None of these is a protocol fault the suite should name: they
are what the harness must survive.  ``tests/test_hostile.py`` runs each with
``vfmig conformance`` in a process of its own and asserts that the run ends in
bounded time, with exit 1 (2 for adapter mistakes) and reports that do not say
CONFORMANT.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reference_impl.clock import SimClock
from reference_impl.device import DeviceTiming, FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.factories import CONFORMANCE_BUFFERS
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.pci import PCI_STATUS

Misbehaviour = Callable[[VirtualFunction], int]


def _busy_loop(function: VirtualFunction) -> int:
    while True:
        pass


def _sleep(function: VirtualFunction) -> int:
    time.sleep(3600)
    return 0


def _hang_in_c(function: VirtualFunction) -> int:
    """A deadlock on a C mutex: a signal interrupts pthread_mutex_lock only to resume waiting, so the Python
    timer's handler never gets to run."""
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER on glibc
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)
    return 0


def _swallow_everything(function: VirtualFunction) -> int:
    while True:
        try:  # noqa: SIM105 - written out: catching everything, the harness's timeout too, is the point
            time.sleep(3600)
        except BaseException:
            pass


def _keyboard_interrupt(function: VirtualFunction) -> int:
    raise KeyboardInterrupt


def _system_exit(function: VirtualFunction) -> int:
    raise SystemExit(5)


def _os_exit(function: VirtualFunction) -> int:
    os._exit(3)


def _segfault(function: VirtualFunction) -> int:
    ctypes.string_at(0)
    return 0


def _allocate_without_end(function: VirtualFunction) -> int:
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))


def _wrong_type(function: VirtualFunction) -> int:
    return "plenty"  # type: ignore[return-value]


def _chatty(function: VirtualFunction) -> int:
    line = "the device model says hello " * 4 + "\n"
    for _ in range(40_000):  # about 4.5 MB on standard output, as a debug build might
        sys.stdout.write(line)
    sys.stderr.write("and some more on standard error\n" * 1000)
    raise RuntimeError("the device model gave up after talking too much")


_CALLS = Path(os.environ.get("VFMIG_HOSTILE_STATE", "/nonexistent/vfmig-hostile-state"))


def _fails_every_other_world(function: VirtualFunction) -> int:
    """Fails on every other function it builds, counting in a file: state carried between examples, and between
    runs that share a database, so that Hypothesis cannot reproduce what it found."""
    count = int(_CALLS.read_text()) if _CALLS.exists() else 0
    _CALLS.write_text(str(count + 1))
    if count % 2:
        raise ValueError(f"receive failed on call {count}")
    return VirtualFunction.receive(function, 4096)


class HostileFunction(VirtualFunction):
    """The reference function, but ``receive`` does what :attr:`misbehave` says."""

    misbehave: Misbehaviour = staticmethod(_busy_loop)

    def receive(self, nbytes: int) -> int:
        return type(self).misbehave(self)


class _ReferenceDrivers:
    """The reference driver for every function: the hostile part is the device, not its driver."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator, config=DriverConfig(buffers=CONFORMANCE_BUFFERS))


@dataclass(frozen=True)
class HostileDevice(_ReferenceDrivers):
    """A device implementation whose functions misbehave."""

    misbehave: Misbehaviour

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        cls: type[HostileFunction] = type(
            "HostileFunction", (HostileFunction,), {"misbehave": staticmethod(self.misbehave)}
        )
        return cls(name, clock, bus, identity, DeviceTiming())


def busy_loop() -> HostileDevice:
    return HostileDevice(_busy_loop)


def sleep() -> HostileDevice:
    return HostileDevice(_sleep)


def hang_in_c() -> HostileDevice:
    return HostileDevice(_hang_in_c)


def swallow_everything() -> HostileDevice:
    return HostileDevice(_swallow_everything)


def keyboard_interrupt() -> HostileDevice:
    return HostileDevice(_keyboard_interrupt)


def system_exit() -> HostileDevice:
    return HostileDevice(_system_exit)


def os_exit() -> HostileDevice:
    return HostileDevice(_os_exit)


def segfault() -> HostileDevice:
    return HostileDevice(_segfault)


def allocate_without_end() -> HostileDevice:
    return HostileDevice(_allocate_without_end)


def wrong_type() -> HostileDevice:
    return HostileDevice(_wrong_type)


def chatty() -> HostileDevice:
    return HostileDevice(_chatty)


def fails_every_other_world() -> HostileDevice:
    return HostileDevice(_fails_every_other_world)


def constructor_raises() -> HostileDevice:
    raise RuntimeError("the device model's constructor could not open its configuration")


class _ConfigReadRaises(VirtualFunction):
    """Raises on a configuration read that covers the Status register (offset 0x06), and only there."""

    def config_read(self, offset: int, width: int) -> int:
        if offset <= PCI_STATUS < offset + width:
            raise OSError(f"config read at {offset:#04x} failed")
        return super().config_read(offset, width)


@dataclass(frozen=True)
class ConfigReadRaises(_ReferenceDrivers):
    """A device whose functions raise on one config-space offset."""

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return _ConfigReadRaises(name, clock, bus, identity, DeviceTiming())


def config_read_raises() -> ConfigReadRaises:
    return ConfigReadRaises()
