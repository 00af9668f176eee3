"""The protocol's enumerations: states, events, reasons, roles.

Each enum's numeric values are wire values (they appear in the capability's
registers) or stable identifiers used by the transition tables in
:mod:`vfmig_proto.transitions`.  Docstrings cite the section of ``spec/`` that
gives the member its meaning.
"""

from __future__ import annotations

from enum import Enum, IntEnum, unique


@unique
class MigState(IntEnum):
    """Bridge-wide migration state, register ``MIG_STATE`` (spec §4.3).

    Written only by the hypervisor through the bridge; read-only to the guest.
    """

    IDLE = 0
    """No migration in progress (§4.3.1)."""
    PREPARE = 1
    """Migration started; bound devices are asked to turn DMA dirtying on (§4.3.2)."""
    PRECOPY = 2
    """Every bound device dirties its DMA writes; pre-copy rounds run (§4.3.3)."""
    PAUSING = 3
    """Devices are asked to stop DMA, dirty what they wrote, and acknowledge (§4.3.4)."""
    STOPPED = 4
    """Every bound device is paused; vCPUs are stopped; stop-and-copy runs (§4.3.5)."""
    RESUMING = 5
    """Bad path on the source: the migration ended early; devices resume (§4.3.6)."""
    ARRIVED = 6
    """Destination: the guest runs on fresh functions in reset; drivers reinitialise (§4.3.7)."""


@unique
class MigReason(IntEnum):
    """How the most recent migration ended, register ``MIG_REASON`` (spec §4.4).

    ``NONE`` while a migration is in progress or before the first one.
    """

    NONE = 0
    """No migration has ended since the last one started (or ever)."""
    COMPLETED = 1
    """The guest runs on the destination (seen only there)."""
    CANCELLED = 2
    """The management layer cancelled the migration."""
    ACK_TIMEOUT = 3
    """A device did not acknowledge a request within ``ACK_TIMEOUT_MS`` (§7.6)."""
    DESTINATION_FAILURE = 4
    """The destination could not take the guest over (§7.8)."""
    DEVICE_ERROR = 5
    """A device behind the bridge reported an error (§7.9)."""
    SURPRISE_REMOVAL = 6
    """A device behind the bridge disappeared (§7.9)."""
    PROTOCOL_ERROR = 7
    """The guest wrote a report that the device state machine rejects (§4.5)."""


@unique
class DevState(IntEnum):
    """Per-device handshake state, register ``DEV_STATE`` of each slot (spec §4.2).

    Maintained by the bridge; read-only to the guest.
    """

    EMPTY = 0
    """No function in this slot (§4.2.1)."""
    UNBOUND = 1
    """A function is present and no protocol driver is bound to it (§4.2.2, §7.4)."""
    READY = 2
    """A driver is bound and operates the function normally, without dirtying (§4.2.3)."""
    DIRTY_REQ = 3
    """The bridge asked the driver to turn DMA dirtying on; acknowledgement pending (§4.2.4)."""
    DIRTYING = 4
    """The driver dirties every page the function writes by DMA (§4.2.5, §5)."""
    PAUSE_REQ = 5
    """The bridge asked the driver to pause the function; acknowledgement pending (§4.2.6)."""
    PAUSED = 6
    """The function does no DMA and raises no interrupts; its writes are all dirtied (§4.2.7)."""
    RESUME_REQ = 7
    """Bad path: the bridge asked the driver to resume the paused function (§4.2.8)."""
    REINIT_REQ = 8
    """The function was reset (destination or group reset); the driver must reinitialise it (§4.2.9)."""
    ERROR = 9
    """The function failed; a group reset, its removal or its driver's unbinding leaves this state (§4.2.10, §7.9)."""


@unique
class DriverReport(IntEnum):
    """What the guest's driver reports for a slot, field ``DEV_CTRL.DRV_STATE`` (spec §4.2).

    Each write of this field is an event for the slot's device state machine
    (see :data:`vfmig_proto.transitions.REPORT_EVENTS`).
    """

    NONE = 0
    """No protocol driver is bound (written on unbind; reset value)."""
    READY = 1
    """The driver is bound and operating normally; also: resumed, or reinitialised."""
    DIRTYING = 2
    """The driver dirties every page the function writes by DMA."""
    PAUSED = 3
    """The function is quiesced: bus mastering off, DMA stopped, every written page dirtied."""


@unique
class SlotFlag(Enum):
    """The status flags of a slot entry, register ``DEV_STATUS`` (spec §3.5); the value is the field's name.

    The bridge sets them; the guest clears them by writing 1 (RW1C).
    """

    MIGRATED = "migrated"
    """The function is a fresh one on the destination; its driver must reinitialise it (spec §7.5, VFM-FLAG-001)."""
    RESET = "reset"
    """A group reset reset the function (spec §7.9, VFM-ERR-005)."""
    PROTOCOL_ERROR = "protocol_error"
    """The bridge rejected a report for the slot (spec §4.5, VFM-DEV-010)."""


class Origin(Enum):
    """Who causes an event."""

    HOST = "host"
    """The hypervisor, acting through the bridge."""
    GUEST = "guest"
    """The guest, by a config-space write."""


@unique
class DevEvent(Enum):
    """Events of the per-device state machine (spec §4.2).

    The value is a pair ``(name, origin)``; :attr:`origin` says who causes it.
    """

    HOT_ADD = ("hot_add", Origin.HOST)
    """A function appears in the slot (hot-plug, or assignment at start-up)."""
    SURPRISE_REMOVAL = ("surprise_removal", Origin.HOST)
    """The function disappears without warning (§7.9)."""
    DEVICE_ERROR = ("device_error", Origin.HOST)
    """The function reported an uncorrectable error (§7.9)."""
    GROUP_RESET = ("group_reset", Origin.HOST)
    """Secondary bus reset of the bridge: every function behind it is reset (§7.9)."""
    REQUEST_DIRTYING = ("request_dirtying", Origin.HOST)
    """The bridge asks the driver to turn DMA dirtying on (migration start)."""
    REQUEST_PAUSE = ("request_pause", Origin.HOST)
    """The bridge asks the driver to pause the function (end of pre-copy)."""
    CANCEL = ("cancel", Origin.HOST)
    """The migration ended early on the source: requests are withdrawn (§7.7)."""
    ARRIVE = ("arrive", Origin.HOST)
    """The guest now runs on the destination with a fresh function in reset (§7.1)."""
    DRIVER_DETACHED = ("driver_detached", Origin.GUEST)
    """The guest wrote ``DRV_STATE = NONE``."""
    DRIVER_READY = ("driver_ready", Origin.GUEST)
    """The guest wrote ``DRV_STATE = READY``."""
    DRIVER_DIRTYING = ("driver_dirtying", Origin.GUEST)
    """The guest wrote ``DRV_STATE = DIRTYING``."""
    DRIVER_PAUSED = ("driver_paused", Origin.GUEST)
    """The guest wrote ``DRV_STATE = PAUSED``."""

    @property
    def origin(self) -> Origin:
        """Who causes this event."""
        return self.value[1]

    def __str__(self) -> str:
        return self.name


@unique
class MigEvent(Enum):
    """Events of the bridge-wide migration state machine (spec §4.3).

    ``ALL_*`` events are raised by the bridge itself when every slot has
    reached a state listed in :data:`vfmig_proto.transitions.SETTLED_STATES`.
    """

    START = "start"
    """The hypervisor starts a migration (source)."""
    ALL_DIRTYING = "all_dirtying"
    """Every bound device acknowledged dirtying."""
    REQUEST_PAUSE = "request_pause"
    """The hypervisor decided to switch over and asks the devices to pause."""
    ALL_PAUSED = "all_paused"
    """Every bound device acknowledged pause."""
    ARRIVE = "arrive"
    """Destination: the guest's state was restored and the guest runs here."""
    ALL_REINITIALISED = "all_reinitialised"
    """Destination: every bound device was reinitialised by its driver."""
    CANCEL = "cancel"
    """Source: the migration ends early (cancelled, timed out or failed)."""
    ALL_RESUMED = "all_resumed"
    """Source, bad path: every bound device was resumed by its driver."""
    GROUP_RESET = "group_reset"
    """Secondary bus reset of the bridge (reset domain)."""

    def __str__(self) -> str:
        return self.name


@unique
class Role(Enum):
    """The parties a requirement binds (spec §1.4)."""

    HYPERVISOR = "hypervisor"
    """The hypervisor on the source and on the destination (orchestration)."""
    BRIDGE = "bridge"
    """The emulated PCI-to-PCI migration bridge and its capability."""
    DEVICE = "device"
    """The virtual function (hardware or device model)."""
    DRIVER = "driver"
    """The guest side: its migration core and the VF driver."""


@unique
class Target(Enum):
    """What an implementation is checked as: one or two of the roles (spec §11.1).

    The docstring under each member is the "Typical implementation" column of Table 11-1.
    """

    DEVICE = "device"
    """A VF (hardware, or a device model) together with the guest driver written for it and the guest's
    migration core."""
    BRIDGE = "bridge"
    """An emulated PCI-to-PCI bridge with a standard hot-plug controller and the migration capability,
    such as QEMU's pci-bridge with the capability added."""
    HYPERVISOR = "hypervisor"
    """The orchestration on the source and destination hosts: the VMM's migration code and the management
    glue that drives it."""

    @property
    def roles(self) -> frozenset[Role]:
        """The roles whose requirements this target is checked against."""
        return _TARGET_ROLES[self]


_TARGET_ROLES: dict[Target, frozenset[Role]] = {
    Target.DEVICE: frozenset({Role.DEVICE, Role.DRIVER}),
    Target.BRIDGE: frozenset({Role.BRIDGE}),
    Target.HYPERVISOR: frozenset({Role.HYPERVISOR}),
}
"""The device and driver roles form one target: neither can be checked without the other (spec §11.1)."""


@unique
class Keyword(Enum):
    """RFC 2119 / RFC 8174 requirement levels used in ``spec/``."""

    MUST = "MUST"
    MUST_NOT = "MUST NOT"
    SHOULD = "SHOULD"
    SHOULD_NOT = "SHOULD NOT"
    MAY = "MAY"

    @property
    def is_mandatory(self) -> bool:
        """True for MUST and MUST NOT: breaking one is a conformance failure."""
        return self in (Keyword.MUST, Keyword.MUST_NOT)
