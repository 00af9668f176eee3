"""What the suite does to the bridge, in the guest's seat and in the hypervisor's, with what each must do.

Each action is one step: the model computes what the step must leave behind
(:class:`~conformance.suites.bridge.world.Expectation`), the suite makes the bridge take the step, and the
observers (:mod:`conformance.suites.bridge.observers`) judge it.  The rules
(:mod:`conformance.suites.bridge.rules`) and the scenarios (:mod:`conformance.suites.bridge.scenarios`) are
made of these actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from conformance.suites.bridge.model import cached_reset_value, drv_path, state_path, states_taken
from conformance.suites.bridge.observers.capability import CapabilityObserver
from conformance.suites.bridge.observers.discovery import DiscoveryObserver
from conformance.suites.bridge.observers.hypervisor_seat import SuiteObserver
from conformance.suites.bridge.world import CANCEL_BEFORE_RESET, Expectation, FakeFunction
from reference_impl.clock import SimClock
from reference_impl.events import EventBus, EventKind
from vfmig_proto.access import WRITE_WIDTHS
from vfmig_proto.codec import store_field
from vfmig_proto.engine import Effects
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET, PCI_SHPC_SIZEOF, PCI_STD_HEADER_SIZEOF
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason

CAP_NEXT_PATH = "cap_next"


class Actions(CapabilityObserver, DiscoveryObserver):
    """One guest write or host event at a time, each modelled, performed and judged."""

    # ------------------------------------------------------------------ guest writes

    def _guest_write(self, offset: int, width: int, value: int, what: str) -> None:
        """One guest configuration write, with the model's expectation and every judgement of it."""
        legal = width in WRITE_WIDTHS and offset % width == 0
        value = self._as_version_1_0_guest(offset, width, value)
        expectation = Expectation(
            what=f"{what} ({width}-byte write of 0x{value:0{2 * width}x} at 0x{offset:02x})",
            before=bytes(self.model.data),
            offset=offset,
            width=width,
            data=value.to_bytes(width, "little"),
            legal=legal,
            header_write=legal and offset < PCI_STD_HEADER_SIZEOF,
        )
        if self.shpc_at is not None:
            expectation.shpc_write = offset < self.shpc_at + PCI_SHPC_SIZEOF and self.shpc_at < offset + width
        in_cap = self._in_capability(offset, width)
        sbr_before = None
        if legal and offset <= PCI_BRIDGE_CONTROL < offset + width:
            sbr_before = bool(self._read(PCI_BRIDGE_CONTROL, 1) & PCI_BRIDGE_CTL_BUS_RESET)
        self._begin(expectation)
        if legal and in_cap:
            self._model_write(expectation)
        if sbr_before is False and expectation.data[PCI_BRIDGE_CONTROL - offset] & PCI_BRIDGE_CTL_BUS_RESET:
            self._model_secondary_bus_reset(expectation)
        expectation.state_changed = self.model.state_of(expectation.before) != self.model.state_of(self.model.data)
        self.access_steps = []
        try:
            self.bridge.config_write(offset, width, value)
        except Exception as error:
            self.checks.raise_pending()
            if in_cap:
                self._that(
                    "VFM-ACC-005",
                    False,
                    f"{expectation.what}: a guest write completes normally; it raised {type(error).__name__}: {error}",
                )
            raise
        finally:
            steps, self.access_steps = self.access_steps, None
        self.current = None
        if in_cap:
            self._that("VFM-ACC-005", True, "")
            self._judge_one_step(expectation, steps)
            if expectation.report is not None:
                self._judge_report_finished(expectation)
        elif legal:
            self.registers = self._read_registers()
        if expectation.header_write:
            self._check_header()
        self._expect_interrupts(expectation)
        self._verify(expectation)
        self._visit()

    def _visit(self) -> None:
        """Remember the protocol states the model is in now (``target``, in the scenarios' teardown)."""
        if self._live():
            mig = self.model.mig_state
            self.explored.visited.update((mig, state) for state in self.model.dev_states())

    def _model_write(self, expectation: Expectation) -> None:
        """The model of a legal write to the capability: the mask model, then the report it carries."""
        model = self.model
        start = expectation.offset - self.cap
        expectation.covered = range(start, start + expectation.width)
        expectation.covers_rw = any(model.wmask[i] | model.w1cmask[i] for i in expectation.covered)
        old = {slot: model.get(drv_path(slot)) for slot in range(model.num_slots)}
        model.apply_write(start, expectation.data)
        expectation.masked = bytes(model.data)
        expectation.after_mask = (model.event, model.enabled)
        for slot, ctrl in enumerate(model.dev_ctrl):
            if ctrl in expectation.covered:
                verdict = model.judge(slot, old[slot], self._bme(slot))
                effects = model.apply_report(verdict)
                expectation.report, expectation.chain = verdict, states_taken(effects, slot)
                expectation.outcomes.append(model.finish(effects))

    def _model_secondary_bus_reset(self, expectation: Expectation) -> None:
        """The model of a 0 -> 1 edge of Secondary Bus Reset: the hypervisor's CANCEL if needed, then GROUP_RESET."""
        model = self.model
        expectation.sbr_edge = True
        if model.mig_state in CANCEL_BEFORE_RESET:
            expectation.planned_cancel = True
            expectation.outcomes.append(model.finish(model.migration_event(MigEvent.CANCEL, MigReason.PROTOCOL_ERROR)))
        expectation.outcomes.append(model.finish(model.migration_event(MigEvent.GROUP_RESET)))

    def _write_field(self, path: str, value: int, width: int, what: str) -> None:
        """A guest write of ``width`` bytes at the register that holds ``path``."""
        placed = self.model.by_path[path]
        self._guest_write(self.cap + placed.offset, width, value, what)

    # ------------------------------------------------------------------ host events

    def _host(
        self,
        event: MigEvent | DevEvent,
        what: str,
        call: Callable[[], None],
        apply: Callable[[], Effects],
        slot: int | None = None,
    ) -> None:
        """One host event the suite causes: ``call`` makes the bridge take it, ``apply`` the model."""
        model = self.model
        expectation = Expectation(what=what, before=bytes(model.data), host_event=event.name.lower(), slot=slot)
        self._begin(expectation)
        self.caused.append(event if isinstance(event, MigEvent) else (slot, event))
        expectation.outcomes.append(model.finish(apply()))
        expectation.state_changed = model.state_of(expectation.before) != model.state_of(model.data)
        call()
        self.current = None
        self._expect_interrupts(expectation)
        self._verify(expectation)
        self._visit()

    def _migration_event(
        self, event: MigEvent, what: str, call: Callable[[], None], reason: MigReason | None = None
    ) -> None:
        """A migration event the hypervisor causes (``reason``: a CANCEL's)."""
        self._host(event, what, call, partial(self.model.migration_event, event, reason))

    def _start(self) -> None:
        self._migration_event(MigEvent.START, "START", self.bridge.start)

    def _request_pause(self) -> None:
        self._migration_event(MigEvent.REQUEST_PAUSE, "REQUEST_PAUSE", self.bridge.request_pause)

    def _cancel(self, reason: MigReason) -> None:
        call = partial(self.bridge.cancel, reason)
        self._migration_event(MigEvent.CANCEL, f"CANCEL with {reason.name}", call, reason)

    def _arrive(self) -> None:
        self._migration_event(MigEvent.ARRIVE, "ARRIVE", self.bridge.arrive)

    def _group_reset(self) -> None:
        self._migration_event(MigEvent.GROUP_RESET, "GROUP_RESET by the hypervisor", self.bridge.group_reset)

    def _slot_event(self, slot: int, event: DevEvent, call: Callable[[], None], what: str | None = None) -> None:
        """A host event of one slot; by default described with the slot's ``DEV_STATE`` before it."""
        what = what or f"{event.name} of slot {slot} (DEV_STATE {self.model.dev_state(slot).name})"
        self._host(event, what, call, partial(self.model.slot_event, slot, event), slot)

    def _new_function(self) -> FakeFunction:
        self._functions_made += 1
        return FakeFunction(f"vf{self._functions_made}", self.trace)

    def _hot_add(self, slot: int) -> None:
        function = self._new_function()
        self.functions[slot] = function
        call = partial(self.bridge.hot_add, slot, function)
        self._slot_event(slot, DevEvent.HOT_ADD, call, f"HOT_ADD of {function.name} into slot {slot}")

    def _surprise_removal(self, slot: int) -> None:
        self._slot_event(slot, DevEvent.SURPRISE_REMOVAL, partial(self.bridge.surprise_removal, slot))
        self.functions[slot] = None

    def _device_error(self, slot: int) -> None:
        self._slot_event(slot, DevEvent.DEVICE_ERROR, partial(self.bridge.device_error, slot))

    # ------------------------------------------------------------------ bridges the hypervisor creates and resets

    def _create_bridge(self, name: str) -> Any:
        """A bridge from the implementation under test, of the world's parameters, watched from the hypervisor's
        seat: its published transitions, the steps it announces and its interrupts."""
        bus = EventBus(SimClock())
        bus.subscribe(self._on_transition, (EventKind.MIG_TRANSITION, EventKind.DEV_TRANSITION))
        bridge = self.factory().create_bridge(bus, self.params, name)
        bridge.observers.append(SuiteObserver(self))
        bridge.interrupt_sink = self._on_interrupt
        return bridge

    def _migrate(self) -> None:
        """The handover of a STOPPED bridge to the destination, then ARRIVE there (spec §4.3.5, §10.6).

        The source hypervisor saves the whole config space (``config_space()``) once the vCPUs have stopped;
        the destination hypervisor creates a bridge of the same parameters, restores the saved bytes into it
        with a new function in every slot that held one (Bus Master Enable clear: the destination's functions
        are freshly reset) and issues ARRIVE.  The destination is the bridge under test from then on, so that
        every later step judges the state it restored, and a later START the ``GENERATION`` it carried over
        (VFM-MIG-002).
        """
        saved = bytes(self.bridge.config_space())
        migration = f"the migration of GENERATION {self.model.get('generation')}"
        destination = self._create_bridge(f"destination bridge of {migration}")
        capability = saved[self.cap : self.cap + self.model.length]
        own = bytes(destination.capability_bytes())
        if capability == self.model.data and restore_problem(own, capability, self.params.page_shift) is not None:
            # The model took over a state the source reached by a fault already judged (a slot not settled): a
            # hypervisor must not take it over (VFM-SEC-008) and resumes the guest on the source instead.
            self._cancel(MigReason.DESTINATION_FAILURE)
            return
        functions = [None if function is None else self._new_function() for function in self.functions]
        expectation = Expectation(
            what=f"the destination's restore of the source's config space ({migration})",
            before=bytes(self.model.data),
            host_event="restore",
        )
        self._begin(expectation)
        self._bridge, self.functions = destination, functions
        destination.restore(saved, functions, dirty_page_shift=self.params.page_shift)
        self.current = None
        self.registers = self._read_registers()
        expectation.interrupts = None  # what a restored bridge signals before ARRIVE, the spec leaves open
        self._verify(expectation)
        self._take_over_restored_interrupt_state()
        self.explored.migrations += 1
        if self._live():
            self._arrive()

    def _take_over_restored_interrupt_state(self) -> None:
        """After a restore, start from what the destination bridge did, not from the source's INTx line.

        The destination is a new bridge: its INTx pin is asserted only if the restore itself signalled (which
        the spec leaves open), and a message held by a masked MSI vector on the source may or may not be held
        by it, so the first unmask after a restore owes an unknown number of interrupts.
        """
        registers, model = self.registers, self.model
        self.level = registers.pin(model.event, model.enabled) and self.interrupts > 0
        could_hold = self.pending or (model.event and model.enabled)  # the MSI Pending bit may come with the restore
        held = registers.msi_enabled and registers.msi_masked and could_hold
        self.pending = self.pending_uncertain = bool(held)

    def _conventional_reset(self) -> None:
        """A conventional reset of the bridge, as when the guest's platform is reset (VFM-CAP-006): the reset
        value of every field, with ``DEV_STATE`` UNBOUND in every slot that holds a function."""
        model = self.model
        expectation = Expectation(
            what=f"a conventional reset of the bridge in MIG_STATE {model.mig_state.name}",
            before=bytes(model.data),
            host_event="conventional_reset",
        )
        self._begin(expectation)
        reset = bytearray(cached_reset_value(replace(self.params, next_pointer=model.get(CAP_NEXT_PATH))))
        for slot, function in enumerate(self.functions):
            if function is not None:
                store_field(reset, model.by_path[state_path(slot)], DevState.UNBOUND)
        model.take_over(self._as_presented(bytes(reset)))
        expectation.state_changed = model.state_of(expectation.before) != model.state_of(model.data)
        self.bridge.conventional_reset()
        self.current = None
        self.registers = self._read_registers()
        self.level = self.pending = self.pending_uncertain = False
        expectation.interrupts = None  # a reset clears the header's interrupt enables: nothing is owed
        self._verify(expectation)

    # ------------------------------------------------------------------ a driver and the migration core

    def _report(self, slot: int, value: int, what: str) -> None:
        self._write_field(drv_path(slot), value, 1, what)

    def _clear_event(self, extra: int = 0) -> None:
        self._write_field("status.event", 1 | extra << 1, 2, "the migration core clears STATUS.EVENT")
