"""After every step and at the end of a run: the findings kept so far, and whether each function still works.

When a run ends, the suite lets every migration finish, raises what the
observers kept, and sends each function whose driver is up and READY a frame
(VFM-DEV-009 after a reinitialisation, VFM-FN-002 otherwise); a driver that
was unloaded left its slot UNBOUND or EMPTY (VFM-ABS-001).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from conformance.checks import step
from conformance.suites.device.observers.dirtying import DirtyingObserver
from conformance.suites.device.world import PAGE
from reference_impl.clock import ms
from reference_impl.hypervisor import Hypervisor, MigrationRecord
from vfmig_proto.states import DevState


def _running(record: MigrationRecord) -> bool:
    return not record.ended


class EndOfRunObserver(DirtyingObserver):
    """Raises the findings after each step, and makes the last checks when the run ends."""

    def teardown(self) -> None:
        if self.sim is not None:
            self.final_checks()

    @step(
        "VFM-DEV-009",
        "VFM-FN-002",
        "VFM-ABS-001",
        "VFM-DIRTY-001",
        "VFM-FN-007",
        "VFM-DOWN-002",
        "VFM-FLAG-004",
        "VFM-ERR-007",
    )
    def final_checks(self) -> None:
        world = self.world
        for record in self.records:
            world.clock.run_while(partial(_running, record), record.start_ns + record.bound_ns)
        world.clock.advance(ms(200))
        self.checks.raise_pending()
        self.no_lost_write()
        host = self.guest_host()
        if host is None:
            return
        for driver in world.drivers:
            self._check_works(host, driver)

    def _check_works(self, host: Hypervisor, driver: Any) -> None:
        slot = driver.slot
        function = self.proxies(host).get(slot)
        state = host.bridge.dev_state(slot)
        if not driver.loaded:
            self.checks.that("VFM-ABS-001", state in (DevState.UNBOUND, DevState.EMPTY), f"slot {slot}: {state}")
            return
        if not driver.up or function is None or state is not DevState.READY or getattr(function.inner, "failed", False):
            return
        entry = self.watch[slot].last_entry
        requirement = "VFM-DEV-009" if entry == (DevState.REINIT_REQ, DevState.READY) else "VFM-FN-002"
        self.checks.that(
            requirement, function.receive(PAGE) > 0, f"slot {slot}: READY with the driver up, but it receives nothing"
        )
