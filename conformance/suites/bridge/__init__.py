"""The ``bridge`` target: the emulated migration bridge, driven as the guest and as the hypervisor drive it.

The world: one bridge from the implementation under test, instantiated with
parameters chosen in the ``build`` rule (1 to 8 slots, half the spec's
maximum or the maximum, filled first, middle, last or sparsely; any legal
``PAGE_SHIFT``, ``ACK_TIMEOUT_MS`` and first device number), simple fake
functions in its slots (a settable Bus Master Enable, a record of their
resets), an observer in the hypervisor's seat and an interrupt counter.

The rules do what the guest and the hypervisor can do to a bridge: guest
configuration writes of every width and alignment, legal or not, anywhere in
the capability and the type-1 header; driver reports of every ``DRV_STATE``
value in every state, alone and inside wider writes; Bus Master Enable
toggles on the functions; MSI enable and mask, Interrupt Disable, ``CONTROL``,
``GUEST_FEATURES`` and ``STATUS.EVENT`` writes; Secondary Bus Reset edges; and
every host event that has a row in the transition tables for the current
state (the suite, in the hypervisor's seat, never causes a host event without
a row), and conventional resets of the bridge in any state.  ARRIVE is issued
as a destination hypervisor issues it: on a new bridge of the same parameters,
restored (``restore``) from the ``config_space()`` of the STOPPED source, with
new functions in the occupied slots; that bridge is the one under test from
then on, so that its restore path, the state it carries over and its
``GENERATION`` over repeated migrations are judged.  A cooperative guest and
hypervisor (the ``advance`` rule) move migrations along, so that every state
is reached in a few steps; drivers also unbind and send stale answers in
any phase.  Once in a run, before the first example, a deterministic sweep
(:mod:`~conformance.suites.bridge.sweep`) enumerates every (state, report)
and (state, host event) pair of the tables and every byte lane of the
capability's registers.  Swarm testing switches a random subset of the rules
off in each example, and ``hypothesis.target`` steers towards examples that
visit more states and migrate more often.

The suite is model based.  :class:`~conformance.suites.bridge.model.CapabilityModel` computes the capability
each step must leave behind from :mod:`vfmig_proto` alone: every protocol
decision (judging a report, catch-up, fan-out, settled events, flags,
``GENERATION``) is the protocol engine's (:mod:`vfmig_proto.engine`), the one
the reference bridge and the tests call; the model adds the access rules
(:mod:`vfmig_proto.access`) and the reset value (:mod:`vfmig_proto.codec`).
After every step the suite reads the capability as a guest does (1- and
4-byte configuration reads) and through ``capability_bytes()``, and judges
every field that differs from the model.
Each field is judged by the most specific requirement that speaks of it in
that step, and a field once judged is not judged again in the same step, so
that one fault is reported once, under the requirement it breaks.
Interrupts are counted through ``interrupt_sink`` and compared with what
``STATUS.EVENT``, ``CONTROL`` (the model's) and the bridge's MSI and Command
registers call for (spec §6.2).

When a requirement has already been judged (its checks are off for the rest
of the run) and the bridge differs from the model because of it, the model
takes the bridge's state over after the step, so that one known fault does
not turn later steps into findings against other requirements.

Some requirements are seen from the side:

* VFM-ACC-007 (one access, one step): the bridge tells its observer of every
  step; within one guest write it may tell of one step only, whose state is
  the write's result (the hypervisor's own events from within the write,
  VFM-MIG-011, are steps of their own).  A bridge that never calls
  ``bridge_stepped`` is judged on its registers alone;
* VFM-DEV-004 (a report is processed before its write completes): what the
  host sees when the write returns and what the guest's next reads return
  must agree on ``MIG_STATE`` and every ``DEV_STATE``;
* VFM-DEV-012 (no host event without a row): the host events the bridge
  raises itself (fan-out, catch-up, settled events) are judged as it
  publishes them on the event bus (``EventSink.publish``); a bridge that publishes nothing
  is not;
* VFM-SEC-002 (bounded time, no memory per write): between two rounds of the
  same guest writes, the objects reachable from the bridge and its classes
  must not grow, and one write must not take more Python line events (not
  measured while a debugger or coverage tool traces).  Memory the bridge keeps
  elsewhere (module globals, C extensions) and work done in C are not seen;
* the restore (spec §4.3.5): right after it, and before ARRIVE, the
  destination must present the restored ``GENERATION`` (VFM-MIG-002),
  ``MIG_REASON`` (VFM-MIG-009), ``MIG_STATE`` and every ``DEV_STATE``
  (VFM-SEC-001), every ``MIGRATED`` flag (VFM-FLAG-002) and the fields
  VFM-CAP-007 fixes.  The other restored fields (``CONTROL``,
  ``GUEST_FEATURES``, ``DRV_STATE``, ``STATUS.EVENT``, the ``RESET`` and
  ``PROTOCOL_ERROR`` flags) are not judged: no requirement of the bridge role
  says that a restore keeps them (VFM-REP-001 binds the hypervisor);
* VFM-VER-006 (later features gated by GUEST_FEATURES): the suite's guest
  knows version 1.0 and never accepts a later feature, so a bridge that
  presents a minor version above 0 must keep the reserved bits of version 1.0
  as a 1.0 bridge does (a 1.0 bridge meets it by construction).  Registers
  after the last slot entry (a larger ``CAP_LEN``) are not supported.

The package
-----------

:class:`BridgeSuite` is composed of mixins, each a subclass of
:class:`~conformance.suites.bridge.world.BridgeWorld`, which holds the state they share:

* :mod:`~conformance.suites.bridge.world`: the bridge, the model and what the suite has seen, and guest reads;
* :mod:`~conformance.suites.bridge.model`: the model of the capability;
* :mod:`~conformance.suites.bridge.observers`: the judgements, one module per aspect of the bridge;
* :mod:`~conformance.suites.bridge.actions`: one guest write or host event, modelled, performed and judged;
* :mod:`~conformance.suites.bridge.rules`: the world's construction and the rules of the guest and the
  hypervisor;
* :mod:`~conformance.suites.bridge.scenarios`: a cooperative guest and hypervisor moving migrations along.

A mixin that calls another's methods derives from it (the capability observer from the ones it hands a step
to, the actions from the observers, the rules and the scenarios from the actions), so that each module
type-checks on its own; :class:`BridgeSuite` lists them all.  Hypothesis collects the rules of every mixin by
name, so the package's layout does not change what a run does.
"""

from __future__ import annotations

from conformance.suites.bridge.actions import Actions
from conformance.suites.bridge.observers.capability import CapabilityObserver
from conformance.suites.bridge.observers.discovery import DiscoveryObserver
from conformance.suites.bridge.observers.hypervisor_seat import HypervisorSeat
from conformance.suites.bridge.observers.interrupts import InterruptObserver
from conformance.suites.bridge.observers.reports import ReportObserver
from conformance.suites.bridge.observers.versions import VersionObserver
from conformance.suites.bridge.rules import Rules
from conformance.suites.bridge.scenarios import Scenarios
from conformance.suites.bridge.world import BridgeWorld

__all__ = ["BridgeSuite"]


class BridgeSuite(
    Rules,
    Scenarios,
    Actions,
    CapabilityObserver,
    ReportObserver,
    InterruptObserver,
    HypervisorSeat,
    DiscoveryObserver,
    VersionObserver,
    BridgeWorld,
):
    """Random guest accesses and host events on one bridge, judged against a model of the capability."""
