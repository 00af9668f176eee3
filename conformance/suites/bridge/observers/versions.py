"""Versioning (spec §9): a bridge of a later minor version, towards a guest that knows version 1.0 only.

VFM-VER-006 (later features gated by GUEST_FEATURES): the suite's guest knows version 1.0 and never accepts a
later feature, so a bridge that presents a minor version above 0 must keep the reserved bits of version 1.0 as a
1.0 bridge does (a 1.0 bridge meets it by construction).  :class:`VersionObserver` makes the model present what
such a bridge presents, and makes the guest's writes those of a version 1.0 guest; the capability observer
(:mod:`conformance.suites.bridge.observers.capability`) judges the reserved bits.
"""

from __future__ import annotations

from functools import cache

from conformance.suites.bridge.world import BridgeWorld, register_offset

# The capability offsets of the registers versioning speaks of (spec §3.2, §9), from vfmig_proto's layout.
VERSION_MAJOR = register_offset("version_major")
VERSION_MINOR = register_offset("version_minor")
HOST_FEATURES = register_offset("host_features.dma_dirty")
GUEST_FEATURES = register_offset("guest_features.dma_dirty")
LATER_FEATURES_SHIFT = 4
"""HOST_FEATURES and GUEST_FEATURES bits [31:4] are the feature bits of later minor versions (spec §9.2)."""


@cache
def extension_paths(num_slots: int) -> tuple[str, ...]:
    """The fields of version 1.0 in which a later minor version may put control and status bits (spec §9.2)."""
    per_slot = (f"device[{slot}].{name}.reserved" for slot in range(num_slots) for name in ("dev_ctrl", "dev_status"))
    return ("guest_features.reserved", "control.reserved", "status.reserved", *per_slot)


class VersionObserver(BridgeWorld):
    """The capability and the guest's writes as they are between a later minor version and a 1.0 guest."""

    def _as_presented(self, capability: bytes) -> bytes:
        """A 1.0 capability as a bridge of the minor version the bridge presents shows it (spec §9.2, §9.4).

        A later minor version presents its own VERSION_MINOR and offers its new features in HOST_FEATURES[31:4];
        towards a guest that accepts none of them it behaves as a version 1.0 bridge in everything else.
        """
        if not self.version_minor:
            return capability
        data = bytearray(capability)
        data[VERSION_MINOR] = self.version_minor
        features = int.from_bytes(data[HOST_FEATURES : HOST_FEATURES + 4], "little") & ((1 << LATER_FEATURES_SHIFT) - 1)
        features |= self.later_features << LATER_FEATURES_SHIFT
        data[HOST_FEATURES : HOST_FEATURES + 4] = features.to_bytes(4, "little")
        return bytes(data)

    def _as_version_1_0_guest(self, offset: int, width: int, value: int) -> int:
        """``value`` with GUEST_FEATURES[31:4] as the guest last read them, if the write covers them.

        The suite's guest knows version 1.0 only: towards a bridge of a later minor version it writes back what it
        read into those bits (VFM-VER-003) and so accepts none of the later features (VFM-VER-006).
        """
        start = self.cap + GUEST_FEATURES
        if not self.version_minor or offset >= start + 4 or start >= offset + width:
            return value
        data = bytearray(value.to_bytes(width, "little"))
        for position in range(max(offset, start), min(offset + width, start + 4)):
            later = 0xFF if position > start else 0xFF & ~((1 << LATER_FEATURES_SHIFT) - 1)
            data[position - offset] = data[position - offset] & ~later | self.model.data[position - self.cap] & later
        return int.from_bytes(data, "little")
