"""What a migration comes to, in terms every implementation shares: its outcome and the refusals.

A hypervisor, a bridge and the conformance suite that judges them must agree on these without sharing an
implementation: a host reports :class:`MigrationOutcome` in its record of a migration, refuses a migration
it may not start with :class:`MigrationRefusedError`, and a destination's bridge refuses a restored
capability with :class:`RestoreRefusedError`.  The reference implementation uses them as they are, and so
may any implementation written against ``conformance.interfaces``.
"""

from __future__ import annotations

from enum import Enum

from vfmig_proto.errors import VfmigError


class MigrationOutcome(Enum):
    """How a migration ended, as the management layer sees it."""

    COMPLETED = "completed"
    """The guest runs on the destination: the source handed it over."""
    CANCELLED = "cancelled"
    """The management layer cancelled it."""
    FAILED = "failed"
    """It ended early for any other reason (``MIG_REASON`` says which)."""


class MigrationRefusedError(VfmigError, RuntimeError):
    """A host refuses to start a migration (a start condition of spec §4.3.1 fails, VFM-MIG-001; the destination
    is busy or tracks dirty memory finer than the guest's pages) or to hot-plug during one (VFM-CANCEL-002).

    The message names the condition that fails."""


class RestoreRefusedError(VfmigError, ValueError):
    """A destination's bridge refuses a restored capability that fails a check of spec §10.6 (VFM-SEC-008).

    The message names the failed check; the bridge is unchanged."""
