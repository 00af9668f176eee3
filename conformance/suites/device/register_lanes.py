"""Byte-lane writes: the guest writes a function's registers with 1-, 2- and 4-byte accesses at every offset.

A driver writes Command with a 2-byte access and the MSI-X Message Control with
another; an operating system's PCI core may write a byte or a whole dword that
also covers Status or the capability's header.  Whichever lane carries it, a
write that the access rules (the per-byte write and write-1-to-clear masks of
:func:`vfmig_proto.headers.function_masks`, QEMU's ``wmask``/``w1cmask``) say
clears Bus Master Enable stops the function's DMA (VFM-FN-001), one that sets
the MSI-X Function Mask silences it (VFM-FN-005), and the function takes up its
work where it stopped once the guest sets them back (VFM-FN-002).  Bytes the
write covers besides the target are written with the value they read, their
write-1-to-clear bits with 0: the write changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.observe import FunctionProxy
from conformance.suites.device.world import PAGE, DeviceWorld
from vfmig_proto.headers import FUNCTION_MSIX_CAP_OFFSET, function_masks
from vfmig_proto.pci import PCI_CAP_ID_MSIX, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_MASKALL

_BAR0_SIZE = 64 * 1024
"""Any BAR size will do: the masks of the Command, Status and MSI-X bytes do not depend on it."""
_WMASK, _W1CMASK = function_masks(_BAR0_SIZE)
_SETTLE_NS = 100_000
"""From setting BME again to the next frame: the guest's interrupt handler has run."""
WIDTHS = (1, 2, 4)
"""The widths of a PCI configuration access."""


@dataclass(frozen=True)
class LaneTarget:
    """One bit of a function's register that the guest sets and clears through a byte lane."""

    name: str
    register: int
    """Offset of the register in the reference layout of :func:`function_masks` (where its masks are)."""
    bit: int
    """The bit, in the register."""


BUS_MASTER = LaneTarget("Command.BME", PCI_COMMAND, PCI_COMMAND_MASTER)
FUNCTION_MASK = LaneTarget(
    "MSI-X Message Control.Function Mask", FUNCTION_MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_MASKALL
)


def bit_byte(target: LaneTarget) -> tuple[int, int]:
    """The byte of the register that holds the target bit (offset from the register) and the bit in it."""
    index = (target.bit.bit_length() - 1) // 8
    return index, target.bit >> (8 * index)


def lane(byte: int, width: int) -> int:
    """The start of the naturally aligned ``width``-byte access that covers ``byte``."""
    return byte - byte % width


def writable(target: LaneTarget) -> bool:
    """Whether the access rules make the target bit RW (data of ``vfmig_proto``, not of this suite)."""
    index, bit = bit_byte(target)
    position = target.register + index
    return bool(_WMASK[position] & bit) and not _W1CMASK[position] & bit


def lane_value(read: int, start: int, width: int, register_start: int, *, target: LaneTarget, on: bool) -> int:
    """The value of a ``width``-byte write at ``start`` that sets (``on``) or clears the target bit and writes
    every other covered byte as read, with 0 in its write-1-to-clear bits.

    ``register_start`` is where the register is in this function; the write-1-to-clear bits are looked up at the
    same distance from the register in the reference layout.
    """
    index, bit = bit_byte(target)
    data = bytearray(read.to_bytes(width, "little"))
    for position in range(width):
        reference = target.register + (start + position - register_start)
        if 0 <= reference < len(_W1CMASK):
            data[position] &= ~_W1CMASK[reference] & 0xFF
    at = register_start + index - start
    data[at] = data[at] | bit if on else data[at] & ~bit & 0xFF
    return int.from_bytes(data, "little")


class RegisterLanes(DeviceWorld):
    """The rule that writes a function's Command and MSI-X Message Control through every byte lane."""

    lane_writing = False
    """Set while the suite makes its own lane write."""

    def on_config_write(self, function: FunctionProxy, offset: int, width: int) -> None:
        """A write of the MSI-X Message Control by anyone else (a driver that unmasks) ends the suite's mask."""
        super().on_config_write(function, offset, width)
        if self.sim is None or self.lane_writing:
            return  # the world is still being built, or the write is the suite's own
        slot = self.slot_of(function)
        if slot is None or not self.watch[slot].suite_masked:
            return
        flags = self._register_start(function, FUNCTION_MASK)
        if flags is not None and offset < flags + 2 and offset + width > flags:
            self.watch[slot].suite_masked = False

    def _lane_write(self, function: FunctionProxy, start: int, width: int, target: LaneTarget, on: bool) -> None:
        register_start = self._register_start(function, target)
        assert register_start is not None
        value = lane_value(function.config_read(start, width), start, width, register_start, target=target, on=on)
        self.lane_writing = True
        try:
            function.config_write(start, width, value)
        finally:
            self.lane_writing = False

    @staticmethod
    def _register_start(function: FunctionProxy, target: LaneTarget) -> int | None:
        if target is BUS_MASTER:
            return PCI_COMMAND
        capability = function.capability(PCI_CAP_ID_MSIX)
        return None if capability is None else capability + PCI_MSIX_FLAGS

    @precondition(lambda self: self.enabled("register_lanes"))
    @precondition(lambda self: DeviceWorld.at_rest(self) and DeviceWorld.guest_running(self))
    @rule(
        slot=st.integers(0, 2),
        bus_master=st.booleans(),
        set_width=st.sampled_from(WIDTHS),
        clear_width=st.sampled_from(WIDTHS),
    )
    @step("VFM-FN-001", "VFM-FN-002", "VFM-FN-005", "VFM-GEN-004")
    def register_lanes(self, slot: int, bus_master: bool, set_width: int, clear_width: int) -> None:
        """The guest clears BME (or sets the Function Mask) of a running function with a ``clear_width``-byte
        write, a frame arrives, and it sets it back with a ``set_width``-byte write: the function stops, and then
        goes on."""
        slot %= len(self.world.drivers)
        function = self._function(slot)
        driver = self.world.drivers[slot]
        if function is None or driver.busy or not self._running_normally(slot, function):
            return
        target = BUS_MASTER if bus_master else FUNCTION_MASK
        register_start = self._register_start(function, target)
        if register_start is None or not writable(target):
            return
        index, _ = bit_byte(target)
        byte = register_start + index
        stop, go = lane(byte, clear_width), lane(byte, set_width)
        where = f"a {clear_width}-byte write at 0x{stop:02x}"
        if bus_master:
            self._quiet_by_bus_master(slot, function, stop, clear_width, where)
        else:
            self._quiet_by_mask(slot, function, stop, clear_width, where)
        on = bus_master  # BME is set back, the Function Mask cleared
        self.watch[slot].suite_masked = False  # a message held while masked may go as soon as it is unmasked
        self.suite_toggles_bme = bus_master
        try:
            self._lane_write(function, go, set_width, target, on)
        finally:
            self.suite_toggles_bme = False
        # A write that landed while BME was clear could not be signalled (VFM-FN-001): the guest polls the
        # queue once, as an operating system does after a lost interrupt, before it looks for more frames.
        self.world.guest.inject_device_interrupt(function.name)
        self.world.clock.advance(_SETTLE_NS)
        if self._running_normally(slot, function, bme=False):
            self._check_receives(
                "VFM-FN-002",
                slot,
                function,
                f"after {target.name} was cleared by {where} and set back by a {set_width}-byte write at "
                f"0x{go:02x}, the function receives nothing: it did not go on from where it stopped",
            )

    def _quiet_by_bus_master(self, slot: int, function: FunctionProxy, start: int, width: int, where: str) -> None:
        self._lane_write(function, start, width, BUS_MASTER, on=False)
        filled = function.receive(PAGE)
        self.checks.record(
            "VFM-FN-001",
            filled == 0,
            f"slot {slot}: BME cleared by {where} (Command at 0x{PCI_COMMAND:02x}), yet a frame that arrived "
            f"filled {filled} buffers by DMA",
        )

    def _quiet_by_mask(self, slot: int, function: FunctionProxy, start: int, width: int, where: str) -> None:
        self._lane_write(function, start, width, FUNCTION_MASK, on=True)
        self.watch[slot].suite_masked = True
        function.receive(PAGE)
        self.world.clock.advance(self.traffic_shape.burst_spacing_ns + 10_000)
