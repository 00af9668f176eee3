"""The migration capability's registers as Python constants, named as the C header names them.

Generated from :mod:`vfmig_proto.layout` and the state enums by :mod:`vfmig_proto.c_header`: do not edit.
After a change to the layout, regenerate it from the repository root with::

    python -m vfmig_proto.c_header --python -o vfmig_proto/registers.py

How the names are made, and which of them are offsets rather than values: :mod:`vfmig_proto.c_header`.
"""

# --- Protocol constants.
VFM_PROTOCOL_MAJOR = 1
"""Value of VFM_VERSION_MAJOR."""
VFM_PROTOCOL_MINOR = 0
"""Value of VFM_VERSION_MINOR."""
VFM_CAP_ID_VNDR = 0x09
"""PCI vendor-specific capability."""
VFM_CFG_TYPE_MIGRATION = 0x56
"""Value of VFM_CFG_TYPE that identifies this protocol's vendor-specific capability."""
VFM_SIGNATURE_VALUE = 0x474D4656
"""Value of VFM_SIGNATURE: "VFMG" in byte order, read as a little-endian 32-bit value."""
VFM_DEFAULT_ACK_TIMEOUT_MS = 500
"""Default deadline in milliseconds for a driver to answer a request (spec §8)."""
VFM_HEADER_SIZE = 0x20
"""Bytes before the first slot entry."""
VFM_SLOT_ENTRY_SIZE = 4
"""Bytes per slot entry: the stride of VFM_SLOT(n)."""
VFM_MIN_SLOTS = 1
"""Fewest slot entries a capability has (NUM_SLOTS)."""
VFM_MAX_SLOTS = 31
"""Most slot entries a capability has (NUM_SLOTS)."""

# --- Capability header: offsets from the capability's first byte.
VFM_CAP_ID = 0x00
"""8-bit RO. PCI capability ID: 0x09, vendor-specific."""
VFM_CAP_NEXT = 0x01
"""8-bit RO. Offset of the next capability in the bridge's list, 0 at the end."""
VFM_CAP_LEN = 0x02
"""8-bit RO. Length of this capability in bytes: 0x20 + 4 x NUM_SLOTS."""
VFM_CFG_TYPE = 0x03
"""8-bit RO. Vendor-specific capability type: 0x56 identifies the vfmig migration capability."""
VFM_SIGNATURE = 0x04
"""32-bit RO. Signature 0x474D4656 ("VFMG" in byte order), so a guest can tell this capability from another vendor's."""
VFM_VERSION_MAJOR = 0x08
"""8-bit RO. Protocol major version: 1. A guest that does not know the major version leaves the capability alone."""
VFM_VERSION_MINOR = 0x09
"""8-bit RO. Protocol minor version: 0. Higher minors are backward compatible."""
VFM_NUM_SLOTS = 0x0A
"""8-bit RO. Number of slot entries that follow the header (1 to 31); each entry's DEV_DEVFN names the function it
describes on the bridge's secondary bus."""
VFM_PAGE_SHIFT = 0x0B
"""8-bit RO. Dirtying granularity as a power of two: the guest page size the hypervisor tracks (12 = 4 KiB)."""
VFM_HOST_FEATURES = 0x0C
"""32-bit RO. Features the bridge offers."""
VFM_GUEST_FEATURES = 0x10
"""32-bit RW/RsvdP. Features the guest's migration core accepted: a subset of HOST_FEATURES."""
VFM_CONTROL = 0x14
"""16-bit RW/RsvdP. Guest control of the protocol."""
VFM_CONTROL_ENABLE = 0x0001
"""RW. The guest's migration core takes part in the protocol. While 0, the hypervisor does not start a migration that
needs the guest's help and the bridge raises no event interrupt (STATUS.EVENT is still set)."""
VFM_CONTROL_EVENT_IE = 0x0002
"""RW. Event interrupt enable: the bridge raises its hot-plug controller's interrupt when it sets STATUS.EVENT."""
VFM_STATUS = 0x16
"""16-bit RW1C/RsvdZ. Event status."""
VFM_STATUS_EVENT = 0x0001
"""RW1C. A migration event is pending: MIG_STATE or a slot's DEV_STATE changed by a host event since the guest last
cleared this bit."""
VFM_MIG_STATE = 0x18
"""8-bit RO. Bridge-wide migration state (MigState)."""
VFM_MIG_REASON = 0x19
"""8-bit RO. How the most recent migration ended (MigReason); NONE while one is in progress."""
VFM_ACK_TIMEOUT_MS = 0x1A
"""16-bit RO. Deadline in milliseconds for a driver to answer a request (1 to 65535)."""
VFM_GENERATION = 0x1C
"""32-bit RO. Migration generation: incremented (mod 2^32) each time a migration starts; carried to the destination."""

# --- Feature bits, the same in VFM_HOST_FEATURES (RO, offered) and VFM_GUEST_FEATURES (RW, accepted).
VFM_HOST_FEATURES_DMA_DIRTY = VFM_GUEST_FEATURES_DMA_DIRTY = 0x00000001
"""DMA page dirtying: every device behind the bridge requires its driver to dirty the pages it writes by DMA while a
migration is in progress (spec §5)."""
VFM_HOST_FEATURES_PAUSE_RESUME = VFM_GUEST_FEATURES_PAUSE_RESUME = 0x00000002
"""Pause/resume: migration events pause and resume the functions behind the bridge instead of removing and probing them
(spec §6.3)."""
VFM_HOST_FEATURES_RESET_DOMAIN = VFM_GUEST_FEATURES_RESET_DOMAIN = 0x00000004
"""The reset domain: a secondary bus reset resets every function behind the bridge as one group and moves their slots to
REINIT_REQ (spec §7.9)."""
VFM_HOST_FEATURES_MIGRATED_FLAG = VFM_GUEST_FEATURES_MIGRATED_FLAG = 0x00000008
"""The migrated flag: DEV_STATUS.MIGRATED tells a driver that its function was replaced while it was not looking (spec
§7.5)."""

# --- Slot entry: offsets from VFM_SLOT(n).
VFM_DEV_STATE = 0x00
"""8-bit RO. Handshake state of the function in this slot (DevState)."""
VFM_DEV_CTRL = 0x01
"""8-bit RW/RsvdP. Driver report for this slot."""
VFM_DEV_CTRL_DRV_STATE = 0x07
"""RW. What the driver reports (DriverReport); each write is an event for the slot's state machine."""
VFM_DEV_CTRL_DRV_STATE_SHIFT = 0
"""Bit position of VFM_DEV_CTRL_DRV_STATE."""
VFM_DEV_STATUS = 0x02
"""8-bit RW1C/RsvdZ. Sticky per-slot status bits."""
VFM_DEV_STATUS_MIGRATED = 0x01
"""RW1C. The function in this slot was replaced by a migration since the driver last cleared this bit: it is in reset
and must be reinitialised before use."""
VFM_DEV_STATUS_RESET = 0x02
"""RW1C. The function was reset by a group reset since the driver last cleared this bit."""
VFM_DEV_STATUS_PROTOCOL_ERROR = 0x04
"""RW1C. The bridge rejected a DRV_STATE write for this slot (spec §4.5)."""
VFM_DEV_DEVFN = 0x03
"""8-bit RO. Device and function number (device << 3 | function) of the function this entry describes, on the bridge's
secondary bus; unique among the entries."""

# --- MigState values.
VFM_MIG_STATE_IDLE = 0
"""MigState.IDLE."""
VFM_MIG_STATE_PREPARE = 1
"""MigState.PREPARE."""
VFM_MIG_STATE_PRECOPY = 2
"""MigState.PRECOPY."""
VFM_MIG_STATE_PAUSING = 3
"""MigState.PAUSING."""
VFM_MIG_STATE_STOPPED = 4
"""MigState.STOPPED."""
VFM_MIG_STATE_RESUMING = 5
"""MigState.RESUMING."""
VFM_MIG_STATE_ARRIVED = 6
"""MigState.ARRIVED."""

# --- MigReason values.
VFM_MIG_REASON_NONE = 0
"""MigReason.NONE."""
VFM_MIG_REASON_COMPLETED = 1
"""MigReason.COMPLETED."""
VFM_MIG_REASON_CANCELLED = 2
"""MigReason.CANCELLED."""
VFM_MIG_REASON_ACK_TIMEOUT = 3
"""MigReason.ACK_TIMEOUT."""
VFM_MIG_REASON_DESTINATION_FAILURE = 4
"""MigReason.DESTINATION_FAILURE."""
VFM_MIG_REASON_DEVICE_ERROR = 5
"""MigReason.DEVICE_ERROR."""
VFM_MIG_REASON_SURPRISE_REMOVAL = 6
"""MigReason.SURPRISE_REMOVAL."""
VFM_MIG_REASON_PROTOCOL_ERROR = 7
"""MigReason.PROTOCOL_ERROR."""

# --- DevState values.
VFM_DEV_STATE_EMPTY = 0
"""DevState.EMPTY."""
VFM_DEV_STATE_UNBOUND = 1
"""DevState.UNBOUND."""
VFM_DEV_STATE_READY = 2
"""DevState.READY."""
VFM_DEV_STATE_DIRTY_REQ = 3
"""DevState.DIRTY_REQ."""
VFM_DEV_STATE_DIRTYING = 4
"""DevState.DIRTYING."""
VFM_DEV_STATE_PAUSE_REQ = 5
"""DevState.PAUSE_REQ."""
VFM_DEV_STATE_PAUSED = 6
"""DevState.PAUSED."""
VFM_DEV_STATE_RESUME_REQ = 7
"""DevState.RESUME_REQ."""
VFM_DEV_STATE_REINIT_REQ = 8
"""DevState.REINIT_REQ."""
VFM_DEV_STATE_ERROR = 9
"""DevState.ERROR."""

# --- DriverReport values.
VFM_DRV_STATE_NONE = 0
"""DriverReport.NONE."""
VFM_DRV_STATE_READY = 1
"""DriverReport.READY."""
VFM_DRV_STATE_DIRTYING = 2
"""DriverReport.DIRTYING."""
VFM_DRV_STATE_PAUSED = 3
"""DriverReport.PAUSED."""
