"""Watching the guest's migration core at the bridge: every configuration access it makes.

The migration core (discovery, negotiation, event handling, the reports it
writes for the VF drivers) is judged by what it does to the bridge's
configuration space, so the ``device`` suite gives the guest a
:class:`~conformance.guest_watch.bridge.WatchedBridge`: the reference bridge,
which tells a :class:`~conformance.guest_watch.watch.GuestWatch` of every
guest read (after it, with the value read) and every guest write (before it
takes effect, so that the bridge's bytes are still the ones the write finds).
Nobody but the guest accesses the bridge's configuration space, so every
access the watch sees is the guest's.

Per access, the watch checks the register access rules (width and alignment,
RW1C bits written back, ``DEV_CTRL`` left out of other writes of a slot
entry, RsvdP and RsvdZ bits), how the core follows the capability list, the
negotiation before ``CONTROL.ENABLE``, when ``ENABLE`` is cleared, the order
"clear ``STATUS.EVENT``, then read" of the event handler, that each event
processing reads every slot with a driver, and what the core reports.  Field
offsets, sizes and access types come from :mod:`vfmig_proto` (layout and
write masks), never from a table kept here.

A :class:`~conformance.guest_watch.bridge.BridgeVariant` changes what the
bridge presents: a higher minor version, feature and reserved bits this
version does not define, a longer capability, the capability somewhere else
in the list, a decoy vendor-specific capability ahead of it, or a header that
a version 1.0 guest must refuse.
:func:`~conformance.guest_watch.probes.probe_variant` runs a fresh migration
core against one such bridge on its own (a guest booting on it), for the
discovery and versioning requirements that the main world, with its one
well-formed bridge, cannot exercise;
:func:`~conformance.guest_watch.probes.run_handshake` drives a core through
two migrations and a group reset with a driver that answers at once, with
``GENERATION`` wrapping or not (VFM-REP-004), and counts how often the core
unbinds the driver (VFM-NOTIF-008).

Some driver requirements are observed only in part: that the core *acts*
on what it reads (VFM-NOTIF-007, VFM-FLOW-004, VFM-DISC-009) is seen as its
reading the states again; that it *intends* to clear an RW1C bit
(VFM-ACC-008) is judged by the pattern section 3.3.5 warns about, a write of
``CONTROL`` or ``DEV_CTRL`` that writes back the RW1C bits it read; and of
VFM-NOTIF-010 the watch sees that each report follows a read of the slot's
``DEV_STATE`` since the slot's previous report.
"""

from conformance.guest_watch.bridge import PLAIN, BridgeVariant, WatchedBridge
from conformance.guest_watch.probes import (
    HandshakeResult,
    ProbeResult,
    StubFunction,
    probe_variant,
    run_handshake,
    watched_guest,
)
from conformance.guest_watch.roles import ByteRoles, byte_roles
from conformance.guest_watch.watch import REACT_NS, GuestWatch

__all__ = [
    "PLAIN",
    "REACT_NS",
    "BridgeVariant",
    "ByteRoles",
    "GuestWatch",
    "HandshakeResult",
    "ProbeResult",
    "StubFunction",
    "WatchedBridge",
    "byte_roles",
    "probe_variant",
    "run_handshake",
    "watched_guest",
]
