"""The Acme X100 virtual function and its guest driver, as a ``device`` implementation for the conformance suite.

Run the suite on it from the root of a vfmig checkout (the directory that holds ``examples/``)::

    vfmig conformance --target device --impl examples.vendor_device.acme_vf:make --profile quick

``make`` is the zero-argument factory that ``--impl MODULE:FACTORY`` names.  It
returns an :class:`AcmeDevice`, which the suite asks for functions
(:meth:`AcmeDevice.create_function`), for their guest drivers
(:meth:`AcmeDevice.create_driver`) and, optionally, for the guest's migration
core (:meth:`AcmeDevice.create_migration_core`).  Nothing here imports the conformance
package: the adapter interfaces of ``conformance.interfaces`` are protocols, and
an implementation satisfies them by its shape.

Acme's model is the reference VF with Acme's IDs, and its driver is the
reference driver with a receive-statistics counter and a log of the states it
acted on.  Every method that a real adapter would forward to the vendor's own
code is marked ``VENDOR CODE``: that is where a call into a Python model goes,
or a shim to a model written in C or Rust (ctypes, cffi, PyO3, a socket to a
device process).  Whatever the model does, it must do it on the simulated clock
it is given (``clock.schedule(...)``), not in wall time, and every call must
return within the step timeout (``--timeout``, 5 s by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import SimClock
from reference_impl.device import DeviceTiming, FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.states import DevState

ACME_IDENTITY = FunctionIdentity(
    vendor_id=0xAC3E,  # an invented vendor ID: use your own
    device_id=0x1001,
    revision=0x02,
    subsystem_vendor_id=0xAC3E,
    subsystem_id=0x0100,
)
"""What the guest reads in the Acme X100 VF's configuration header."""

ACME_TIMING = DeviceTiming(drain_ns=20_000, posted_write_ns=1_000)
"""The X100 drains its in-flight reads 20 µs after Bus Master Enable is cleared; a DMA write lands in 1 µs."""

ACME_RX_BUFFERS = 16
"""Receive buffers per function under the suite: a small ring keeps each of its thousands of steps cheap."""


class AcmeFunction(VirtualFunction):
    """The Acme X100 VF on one host: config space, function-level reset and a receive DMA engine.

    It inherits the reference VF's config space, MSI-X and DMA engine and
    counts the frames it received since its last reset.
    """

    def __init__(self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None = None) -> None:
        # A destination host asks for a function equal to the source's (``identity`` given);
        # otherwise the function has Acme's own IDs.
        super().__init__(name, clock, bus, identity or ACME_IDENTITY, ACME_TIMING)
        self.frames_received = 0

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A configuration write of 1, 2 or 4 bytes."""
        # VENDOR CODE: forward the write to your model's config space.  The suite watches Bus Master
        # Enable and MSI-X through these accesses, so model the Command register and the MSI-X
        # capability as the hardware does.
        super().config_write(offset, width, value)

    def function_level_reset(self, how: str) -> None:
        """A function-level reset (``how``: ``"flr"``, or ``"group"`` for the bridge's reset domain)."""
        # VENDOR CODE: your model's FLR.  Afterwards `in_reset_state` must be true: no DMA, no
        # interrupts, nothing the driver programmed left (VFM-FN-006).
        super().function_level_reset(how)
        self.frames_received = 0

    def receive(self, nbytes: int) -> int:
        """Frames of ``nbytes`` arrive from the network; returns the receive buffers the function filled."""
        # VENDOR CODE: hand the frames to your model's receive path.  It writes guest memory only
        # through `self.memory` (the IOMMU's view) and only while Bus Master Enable is set.
        filled = super().receive(nbytes)
        self.frames_received += filled
        return filled


class AcmeDriver(VfDriver):
    """The Acme X100 guest driver for the function in one slot of the migration bridge.

    It inherits the reference driver's migration callbacks (dirtying mode,
    stop DMA then dirty then acknowledge, reinitialise from reset on the
    destination) and keeps a log of the ``DEV_STATE`` values it acted on.
    """

    def __init__(self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator) -> None:
        super().__init__(guest, core, slot, devfn, allocator, config=DriverConfig(buffers=ACME_RX_BUFFERS))
        self.states_seen: list[DevState | int] = []

    def act_on(self, state: DevState | int) -> None:
        """One sequence of the migration core: act on the slot's ``DEV_STATE``."""
        self.states_seen.append(state)
        # VENDOR CODE: your driver's migration callbacks.  DIRTY_REQ: turn dirtying mode on, then report
        # DIRTYING; PAUSE_REQ: stop DMA, wait for it to drain, dirty every page the function wrote, then
        # report PAUSED; REINIT_REQ: bring the function up from reset with the driver's own state.
        super().act_on(state)


@dataclass(frozen=True)
class AcmeDevice:
    """The ``device`` implementation object: makes Acme functions and their drivers."""

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> AcmeFunction:
        """A fresh function named ``name``, as after a function-level reset."""
        return AcmeFunction(name, clock, bus, identity)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> AcmeDriver:
        """The driver for the function at ``devfn`` in ``slot``, not yet loaded."""
        return AcmeDriver(guest, core, slot, devfn, allocator)

    def create_migration_core(self, guest: Guest) -> MigrationCore:
        """The guest's migration core (optional: without this method the suite uses the reference core)."""
        # VENDOR CODE: if your guest OS has a migration core of its own (the code that finds the
        # capability, enables it, handles the bridge's interrupt and runs each slot's sequences),
        # return it here and the suite checks it too.  Acme's guest uses the reference core.
        return MigrationCore(guest)


def make() -> AcmeDevice:
    """The factory that ``--impl examples.vendor_device.acme_vf:make`` names: a fresh implementation object."""
    return AcmeDevice()
