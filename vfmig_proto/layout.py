"""The migration capability's register layout, field by field (spec §3).

This module is the single definition of the capability.  The Construct codec
(:mod:`vfmig_proto.codec`), the write masks (:mod:`vfmig_proto.access`), the
register tables in ``spec/`` and any C header are all derived from the
``HEADER_REGISTERS`` and ``DEVICE_REGISTERS`` tables below.

The capability is a PCI vendor-specific capability (ID 0x09) in the
configuration space of the migration bridge.  It has a fixed 32-byte header
followed by one 4-byte entry per slot (device number) behind the bridge.  All
multi-byte registers are little-endian, as everything in PCI config space.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum, IntEnum

# PCI_CAP_ID_VNDR is a PCI fact and lives in pci.py.  The alias is mypy --strict's explicit re-export, for callers
# that still import it from here (reference_impl/driver.py, conformance/catalogue/device_core_faults.py); drop it
# once they import it from vfmig_proto.pci.
from vfmig_proto.pci import PCI_CAP_ID_VNDR as PCI_CAP_ID_VNDR  # noqa: PLC0414
from vfmig_proto.pci import PCI_DEVICES_PER_BUS
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState

VFM_CFG_TYPE_MIGRATION = 0x56
"""Value of the capability's type byte (offset 3) that identifies this protocol (``"V"``).

Not 0x01: QEMU's bridges (vendor 1b36) already use a vendor-specific
capability with type byte 0x01 for firmware resource reservation, and
SeaBIOS and OVMF recognise that one by ID, type byte and length alone.
"""

VFM_SIGNATURE = 0x474D4656
"""``"VFMG"`` read as a little-endian 32-bit value at offset 4."""

VFM_VERSION_MAJOR = 1
"""The major version this package implements; a different major is a different protocol."""

VFM_VERSION_MINOR = 0
"""The minor version this package implements; higher minors stay compatible (spec §9)."""

VFM_HEADER_SIZE = 0x20
"""Bytes before the first slot entry."""

VFM_SLOT_ENTRY_SIZE = 4
"""Bytes per slot entry."""

VFM_MIN_SLOTS = 1
VFM_MAX_SLOTS = 31
"""A conventional PCI bus behind a bridge has 32 device numbers; SHPC manages at most 31 slots."""

VFM_MIN_PAGE_SHIFT = 12
VFM_MAX_PAGE_SHIFT = 30
"""Dirtying granularity: from 4 KiB pages up to 1 GiB pages."""

VFM_DEFAULT_ACK_TIMEOUT_MS = 500
"""Default deadline for a driver to answer a request (spec §8)."""

VFM_MIN_ACK_TIMEOUT_MS = 1
VFM_MAX_ACK_TIMEOUT_MS = 0xFFFF
"""ACK_TIMEOUT_MS is a 16-bit register that is never 0 (spec §3.2, VFM-CAP-005)."""

QEMU_BRIDGE_CAP_OFFSET = 0x64
"""Where a bridge derived from QEMU's ``pci-bridge`` places the capability (spec §3.1.1, VFM-CAP-003).

The first free DWORD after QEMU's 24-byte MSI capability at 0x4C; from 0x64
to 0xFF there are 0x9C bytes, room for a capability of 31 slots.
"""

QEMU_BRIDGE_CAP_NEXT = 0x4C
"""``CAP_NEXT`` of the capability at :data:`QEMU_BRIDGE_CAP_OFFSET`: QEMU's MSI capability, the list's old head
(spec §3.1.1, VFM-CAP-003)."""


class Access(Enum):
    """Register access types (PCI Local Bus 3.0 §6.1, PCIe Base 6.0 §7.4)."""

    RO = "RO"
    """Read-only: guest writes have no effect."""
    RW = "RW"
    """Read-write: a guest write stores the value."""
    RW1C = "RW1C"
    """Write 1 to clear: a 1 written clears the bit, a 0 written has no effect."""
    RSVDP = "RsvdP"
    """Reserved and preserved: reads return the current value; writes do not change it."""
    RSVDZ = "RsvdZ"
    """Reserved and zero: reads return 0; writes have no effect."""


class Param(Enum):
    """Reset values that depend on how a bridge instantiates the capability."""

    NEXT_POINTER = "next_pointer"
    LENGTH = "length"
    NUM_SLOTS = "num_slots"
    PAGE_SHIFT = "page_shift"
    ACK_TIMEOUT_MS = "ack_timeout_ms"
    SLOT_DEVFN = "slot_devfn"
    """Per slot entry: ``(first_device + N) << 3`` for entry N."""


@dataclass(frozen=True)
class Field:
    """A bit field of a register.

    ``lsb`` and ``width`` are in bits, counted from the register's bit 0.
    ``reset`` is the value after reset, or a :class:`Param` the bridge chooses.
    ``values`` names the enum of legal values; ``const`` marks a field whose
    value the spec fixes (strict decoding rejects any other value).
    """

    name: str
    lsb: int
    width: int
    access: Access
    doc: str
    reset: int | Param = 0
    values: type[IntEnum] | None = None
    const: bool = False

    @property
    def mask(self) -> int:
        """The field's bits within its register."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def is_reserved(self) -> bool:
        """Whether the field is a reserved area rather than a defined field."""
        return self.access in (Access.RSVDP, Access.RSVDZ) or self.name == "reserved"


@dataclass(frozen=True)
class Register:
    """A register: ``size`` bytes at ``offset`` (from the capability or slot-entry start)."""

    name: str
    offset: int
    size: int
    doc: str
    fields: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def c_name(self) -> str:
        """``pci_regs.h``-style name of the register's offset."""
        return f"VFM_{self.name.upper()}"


def _whole(
    name: str,
    offset: int,
    size: int,
    access: Access,
    doc: str,
    *,
    reset: int | Param = 0,
    values: type[IntEnum] | None = None,
    const: bool = False,
) -> Register:
    """A register made of one field that spans all its bits."""
    return Register(name, offset, size, doc, (Field(name, 0, size * 8, access, doc, reset, values, const),))


@dataclass(frozen=True)
class Feature:
    """A feature bit: the bridge offers it in HOST_FEATURES, the guest's migration core accepts it in GUEST_FEATURES."""

    name: str
    bit: int
    doc: str
    """What the feature is, as the object of "Offers" and "Accepts"."""

    @property
    def mask(self) -> int:
        """The feature's bit within HOST_FEATURES and GUEST_FEATURES."""
        return 1 << self.bit


FEATURES: tuple[Feature, ...] = (
    Feature(
        "dma_dirty",
        0,
        "DMA page dirtying: every device behind the bridge requires its driver to dirty "
        "the pages it writes by DMA while a migration is in progress (spec §5).",
    ),
    Feature(
        "pause_resume",
        1,
        "pause/resume: migration events pause and resume the functions behind the bridge "
        "instead of removing and probing them (spec §6.3).",
    ),
    Feature(
        "reset_domain",
        2,
        "the reset domain: a secondary bus reset resets every function behind the bridge "
        "as one group and moves their slots to REINIT_REQ (spec §7.9).",
    ),
    Feature(
        "migrated_flag",
        3,
        "the migrated flag: DEV_STATUS.MIGRATED tells a driver that its function was "
        "replaced while it was not looking (spec §7.5).",
    ),
)
"""The feature bits of this minor version, the same in HOST_FEATURES and GUEST_FEATURES; the bits above are reserved."""

FEATURE_REGISTERS = ("host_features", "guest_features")
"""The registers whose defined fields are :data:`FEATURES`."""


def _feature_fields(access: Access, reserved_access: Access, subject: str) -> tuple[Field, ...]:
    """HOST_FEATURES' (``RO``, offered, reset 1) or GUEST_FEATURES' (``RW``, accepted, reset 0) fields."""
    reset = 1 if access is Access.RO else 0
    features = tuple(
        Field(feature.name, feature.bit, 1, access, f"{subject} {feature.doc}", reset=reset) for feature in FEATURES
    )
    reserved_lsb = max(feature.bit for feature in FEATURES) + 1
    reserved = Field(
        "reserved",
        reserved_lsb,
        32 - reserved_lsb,
        reserved_access,
        "Feature bits of future minor versions. "
        + (
            "Guests ignore bits they do not know."
            if access is Access.RO
            else "A guest writes back what it read; the bridge ignores them."
        ),
    )
    return (*features, reserved)


HEADER_REGISTERS: tuple[Register, ...] = (
    _whole(
        "cap_id",
        0x00,
        1,
        Access.RO,
        "PCI capability ID: 0x09, vendor-specific.",
        reset=PCI_CAP_ID_VNDR,
        const=True,
    ),
    _whole(
        "cap_next",
        0x01,
        1,
        Access.RO,
        "Offset of the next capability in the bridge's list, 0 at the end.",
        reset=Param.NEXT_POINTER,
    ),
    _whole(
        "cap_len",
        0x02,
        1,
        Access.RO,
        "Length of this capability in bytes: 0x20 + 4 x NUM_SLOTS.",
        reset=Param.LENGTH,
    ),
    _whole(
        "cfg_type",
        0x03,
        1,
        Access.RO,
        "Vendor-specific capability type: 0x56 identifies the vfmig migration capability.",
        reset=VFM_CFG_TYPE_MIGRATION,
        const=True,
    ),
    _whole(
        "signature",
        0x04,
        4,
        Access.RO,
        'Signature 0x474D4656 ("VFMG" in byte order), so a guest can tell this capability from another vendor\'s.',
        reset=VFM_SIGNATURE,
        const=True,
    ),
    _whole(
        "version_major",
        0x08,
        1,
        Access.RO,
        "Protocol major version: 1. A guest that does not know the major version leaves the capability alone.",
        reset=VFM_VERSION_MAJOR,
    ),
    _whole(
        "version_minor",
        0x09,
        1,
        Access.RO,
        "Protocol minor version: 0. Higher minors are backward compatible.",
        reset=VFM_VERSION_MINOR,
    ),
    _whole(
        "num_slots",
        0x0A,
        1,
        Access.RO,
        "Number of slot entries that follow the header (1 to 31); each entry's DEV_DEVFN names the "
        "function it describes on the bridge's secondary bus.",
        reset=Param.NUM_SLOTS,
    ),
    _whole(
        "page_shift",
        0x0B,
        1,
        Access.RO,
        "Dirtying granularity as a power of two: the guest page size the hypervisor tracks (12 = 4 KiB).",
        reset=Param.PAGE_SHIFT,
    ),
    Register(
        "host_features",
        0x0C,
        4,
        "Features the bridge offers.",
        _feature_fields(Access.RO, Access.RO, "Offers"),
    ),
    Register(
        "guest_features",
        0x10,
        4,
        "Features the guest's migration core accepted: a subset of HOST_FEATURES.",
        _feature_fields(Access.RW, Access.RSVDP, "Accepts"),
    ),
    Register(
        "control",
        0x14,
        2,
        "Guest control of the protocol.",
        (
            Field(
                "enable",
                0,
                1,
                Access.RW,
                "The guest's migration core takes part in the protocol. While 0, the hypervisor does not "
                "start a migration that needs the guest's help and the bridge raises no event interrupt "
                "(STATUS.EVENT is still set).",
            ),
            Field(
                "event_ie",
                1,
                1,
                Access.RW,
                "Event interrupt enable: the bridge raises its hot-plug controller's interrupt when it "
                "sets STATUS.EVENT.",
            ),
            Field("reserved", 2, 14, Access.RSVDP, "Reserved."),
        ),
    ),
    Register(
        "status",
        0x16,
        2,
        "Event status.",
        (
            Field(
                "event",
                0,
                1,
                Access.RW1C,
                "A migration event is pending: MIG_STATE or a slot's DEV_STATE changed by a host event "
                "since the guest last cleared this bit.",
            ),
            Field("reserved", 1, 15, Access.RSVDZ, "Reserved, reads 0."),
        ),
    ),
    _whole(
        "mig_state",
        0x18,
        1,
        Access.RO,
        "Bridge-wide migration state (MigState).",
        reset=MigState.IDLE,
        values=MigState,
    ),
    _whole(
        "mig_reason",
        0x19,
        1,
        Access.RO,
        "How the most recent migration ended (MigReason); NONE while one is in progress.",
        reset=MigReason.NONE,
        values=MigReason,
    ),
    _whole(
        "ack_timeout_ms",
        0x1A,
        2,
        Access.RO,
        "Deadline in milliseconds for a driver to answer a request (1 to 65535).",
        reset=Param.ACK_TIMEOUT_MS,
    ),
    _whole(
        "generation",
        0x1C,
        4,
        Access.RO,
        "Migration generation: incremented (mod 2^32) each time a migration starts; carried to the destination.",
    ),
)
"""Registers of the capability header, offsets from the capability's first byte."""


DEVICE_REGISTERS: tuple[Register, ...] = (
    _whole(
        "dev_state",
        0x0,
        1,
        Access.RO,
        "Handshake state of the function in this slot (DevState).",
        reset=DevState.EMPTY,
        values=DevState,
    ),
    Register(
        "dev_ctrl",
        0x1,
        1,
        "Driver report for this slot.",
        (
            Field(
                "drv_state",
                0,
                3,
                Access.RW,
                "What the driver reports (DriverReport); each write is an event for the slot's state machine.",
                reset=DriverReport.NONE,
                values=DriverReport,
            ),
            Field("reserved", 3, 5, Access.RSVDP, "Reserved."),
        ),
    ),
    Register(
        "dev_status",
        0x2,
        1,
        "Sticky per-slot status bits.",
        (
            Field(
                "migrated",
                0,
                1,
                Access.RW1C,
                "The function in this slot was replaced by a migration since the driver last cleared "
                "this bit: it is in reset and must be reinitialised before use.",
            ),
            Field(
                "reset",
                1,
                1,
                Access.RW1C,
                "The function was reset by a group reset since the driver last cleared this bit.",
            ),
            Field(
                "protocol_error",
                2,
                1,
                Access.RW1C,
                "The bridge rejected a DRV_STATE write for this slot (spec §4.5).",
            ),
            Field("reserved", 3, 5, Access.RSVDZ, "Reserved, reads 0."),
        ),
    ),
    _whole(
        "dev_devfn",
        0x3,
        1,
        Access.RO,
        "Device and function number (device << 3 | function) of the function this entry describes, on the "
        "bridge's secondary bus; unique among the entries.",
        reset=Param.SLOT_DEVFN,
    ),
)
"""Registers of one slot entry, offsets from the entry's first byte."""


@dataclass(frozen=True)
class CapabilityParams:
    """How a bridge instantiates the capability: the values behind each :class:`Param`."""

    num_slots: int = 8
    next_pointer: int = 0
    page_shift: int = VFM_MIN_PAGE_SHIFT
    ack_timeout_ms: int = VFM_DEFAULT_ACK_TIMEOUT_MS
    first_device: int = 1
    """Device number of entry 0.  QEMU's SHPC puts hot-plug slot i at device i + 1."""

    def __post_init__(self) -> None:
        if not VFM_MIN_SLOTS <= self.num_slots <= VFM_MAX_SLOTS:
            raise ValueError(f"num_slots {self.num_slots} is outside {VFM_MIN_SLOTS}..{VFM_MAX_SLOTS}")
        if self.first_device < 0 or self.first_device + self.num_slots > PCI_DEVICES_PER_BUS:
            raise ValueError(
                f"devices {self.first_device}..{self.first_device + self.num_slots - 1} "
                f"do not fit 0..{PCI_DEVICES_PER_BUS - 1}"
            )

    @property
    def length(self) -> int:
        """The capability's length in bytes."""
        return capability_length(self.num_slots)

    def value_of(self, param: Param, slot: int | None = None) -> int:
        """The value this instance gives ``param`` (for a per-slot parameter, in entry ``slot``)."""
        if param is Param.LENGTH:
            return self.length
        if param is Param.SLOT_DEVFN:
            if slot is None:
                raise ValueError("slot_devfn is a per-slot parameter: name the slot")
            return (self.first_device + slot) << 3
        value: int = getattr(self, param.value)
        return value


def capability_length(num_slots: int) -> int:
    """Bytes in a capability with ``num_slots`` slot entries."""
    return VFM_HEADER_SIZE + VFM_SLOT_ENTRY_SIZE * num_slots


def slot_offset(slot: int) -> int:
    """Offset of slot entry ``slot`` from the capability's first byte."""
    return VFM_HEADER_SIZE + VFM_SLOT_ENTRY_SIZE * slot


@dataclass(frozen=True)
class PlacedField:
    """A field at its absolute place in a capability instance.

    ``path`` is the dotted name used in errors (``"control.enable"``,
    ``"device[2].dev_ctrl.drv_state"``); ``slot`` is None for header fields.
    """

    path: str
    register: Register
    field: Field
    offset: int
    slot: int | None


def _field_path(prefix: str, register: Register, fld: Field) -> str:
    base = f"{prefix}{register.name}"
    return base if len(register.fields) == 1 else f"{base}.{fld.name}"


def placed_fields(num_slots: int) -> Iterator[PlacedField]:
    """Every field of a capability with ``num_slots`` slots, in offset order."""
    for register in HEADER_REGISTERS:
        for fld in register.fields:
            yield PlacedField(_field_path("", register, fld), register, fld, register.offset, None)
    for slot in range(num_slots):
        base = slot_offset(slot)
        for register in DEVICE_REGISTERS:
            for fld in register.fields:
                path = _field_path(f"device[{slot}].", register, fld)
                yield PlacedField(path, register, fld, base + register.offset, slot)


def _check_layout() -> None:
    """Guard the tables against overlaps, gaps and fields that do not fit."""
    for group, total in ((HEADER_REGISTERS, VFM_HEADER_SIZE), (DEVICE_REGISTERS, VFM_SLOT_ENTRY_SIZE)):
        expected = 0
        for register in group:
            if register.offset != expected:
                raise AssertionError(f"register {register.name} at 0x{register.offset:02x}, expected 0x{expected:02x}")
            covered = 0
            for fld in register.fields:
                if covered & fld.mask or fld.lsb + fld.width > register.size * 8:
                    raise AssertionError(f"field {register.name}.{fld.name} overlaps or overflows")
                covered |= fld.mask
            if covered != (1 << (register.size * 8)) - 1:
                raise AssertionError(f"register {register.name} has bits that no field covers")
            expected += register.size
        if expected != total:
            raise AssertionError(f"register group ends at 0x{expected:02x}, expected 0x{total:02x}")


_check_layout()
