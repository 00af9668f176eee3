"""The checks a destination makes of a restored capability before it lets the guest run (spec §10.6).

The destination hypervisor restores the capability the source saved (VFM-REP-001) and issues ARRIVE only if it
passes these checks (VFM-SEC-008): the parameters a bridge is instantiated with and the version are the
destination bridge's own, its page size is no coarser than the host's dirty tracking (VFM-DIRTY-007), the
migration stopped, and every slot is in a state a destination can take over.  One function judges this for the
reference bridge and hypervisor, the suites and any implementation that wants it.
"""

from __future__ import annotations

from vfmig_proto.codec import decode_capability
from vfmig_proto.errors import DecodeError
from vfmig_proto.states import DevState, MigState

RESTORE_COMPARED_FIELDS = (
    "num_slots",
    "page_shift",
    "ack_timeout_ms",
    "host_features",
    "version_major",
    "version_minor",
)
"""Header fields a restored capability must share with the destination bridge's own (with every DEV_DEVFN)."""

RESTORABLE_SLOT_STATES = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.PAUSED})
"""The ``DEV_STATE`` values a slot may have in a restored capability: the source has settled every slot."""


def restore_problem(own: bytes, received: bytes, dirty_page_shift: int) -> str | None:
    """Why a destination bridge whose capability is ``own`` must refuse ``received``, or None if it passes.

    ``dirty_page_shift`` is log2 of the granularity of the destination host's dirty tracking.
    """
    try:
        sent = decode_capability(received)
    except DecodeError as error:
        return str(error)
    mine = decode_capability(own)
    problems = [
        f"{name.upper()} {getattr(sent, name)!r} differs from this bridge's {getattr(mine, name)!r}"
        for name in RESTORE_COMPARED_FIELDS
        if getattr(sent, name) != getattr(mine, name)
    ]
    if [entry.dev_devfn for entry in sent.devices] != [entry.dev_devfn for entry in mine.devices]:
        problems.append("DEV_DEVFN of the slot entries differs from this bridge's")
    if sent.page_shift > dirty_page_shift:  # VFM-DIRTY-007: tracking at 2^PAGE_SHIFT or coarser
        problems.append(
            f"PAGE_SHIFT {sent.page_shift} is coarser than this host's dirty tracking (2^{dirty_page_shift} bytes)"
        )
    if sent.mig_state is not MigState.STOPPED:
        problems.append(f"MIG_STATE is {sent.mig_state.name}, not STOPPED")
    problems.extend(
        f"slot {slot} DEV_STATE is {entry.dev_state.name}: not EMPTY, UNBOUND or PAUSED"
        for slot, entry in enumerate(sent.devices)
        if entry.dev_state not in RESTORABLE_SLOT_STATES
    )
    return "; ".join(problems) or None
