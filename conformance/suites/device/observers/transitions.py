"""DEV_STATE transitions: each accepted change of a slot's state opens or closes what the other observers watch.

DIRTYING and PAUSE_REQ open the slot's dirtying window (and PAUSE_REQ sends a
burst of frames, so that DMA races the pause); PAUSED and an unbinding judge
it; READY after RESUME_REQ is judged for the function's BME
(VFM-CANCEL-003); a request that comes to a driver whose interface is down,
and READY for a configured function, start their deadlines.
"""

from __future__ import annotations

from conformance.observe import FunctionProxy
from conformance.suites.device.observers.deadlines import DeadlineObserver
from conformance.suites.device.observers.dirtying import DirtyingObserver
from conformance.suites.device.world import PAGE, SlotWatch
from reference_impl.events import Event, EventBus, EventKind
from vfmig_proto.states import DevEvent, DevState
from vfmig_proto.transitions import Action

BURST_FRAMES = 12
"""When a running function is asked to pause, this many frames arrive, one every :data:`BURST_SPACING_NS`."""
BURST_SPACING_NS = 1_000
"""A microsecond between the frames of a burst."""
REQUESTS = (DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ, DevState.REINIT_REQ)
"""The requests a driver answers whether or not its interface is up (VFM-DOWN-002)."""
_ANSWERING = (DevState.REINIT_REQ, DevState.RESUME_REQ)
"""The requests a driver answers by bringing its function up."""
_WINDOW_CLOSERS = (DevState.READY, DevState.RESUME_REQ, DevState.REINIT_REQ, DevState.EMPTY, DevState.ERROR)
"""States in which no dirtying is owed any more."""


class TransitionObserver(DirtyingObserver, DeadlineObserver):
    """Follows every accepted DEV_STATE change of every slot."""

    def observe(self, bus: EventBus) -> None:
        super().observe(bus)
        bus.subscribe(self.on_dev_transition, [EventKind.DEV_TRANSITION])

    def on_dev_transition(self, event: Event) -> None:
        slot = int(event.data["slot"])
        old, new, dev_event = event.data["old"], event.data["new"], event.data["event"]
        watch = self.watch.get(slot)
        if watch is None or event.data["action"] is not Action.ACCEPT:
            return
        watch.last_entry = (old, new)
        watch.entries += 1
        self._requests(slot, watch, old, new, dev_event)
        if new is DevState.DIRTYING:
            self._open_window(watch)
        elif new is DevState.PAUSE_REQ:
            function = self._function(slot)
            watch.running_at_pause = function is not None and function.bus_master
            watch.early_pass = False
            self._open_window(watch)
            if function is not None and watch.running_at_pause:
                self._burst(function)
        elif new is DevState.PAUSED:
            self._paused(slot, watch)
        elif new is DevState.UNBOUND and dev_event is DevEvent.DRIVER_DETACHED:
            self._unbound(slot, watch)
        elif new in _WINDOW_CLOSERS:
            if new is DevState.READY and old is DevState.RESUME_REQ:
                self._resumed(slot, watch)
            self._close_window(watch)
        if new is DevState.REINIT_REQ:
            watch.status_read = False

    def _resumed(self, slot: int, watch: SlotWatch) -> None:
        """READY answering RESUME_REQ: a function that ran when the pause came runs again (VFM-CANCEL-003)."""
        function = self._function(slot)
        watch.bme_at_ready = function is not None and function.bus_master
        driver = self.world.drivers[slot]
        # An interface closed meanwhile is not restarted: the administrator asked for it down.
        owed = watch.running_at_pause and driver.loaded and driver.up
        self.checks.record(
            "VFM-CANCEL-003",
            not owed or bool(watch.bme_at_ready),
            f"slot {slot}: READY answering RESUME_REQ with the function's BME clear",
        )

    def _requests(self, slot: int, watch: SlotWatch, old: DevState, new: DevState, dev_event: DevEvent) -> None:
        """The requests a driver answers: while its interface is down (VFM-DOWN-002), and READY (VFM-ERR-007)."""
        driver = self.world.drivers[slot]
        if new in _ANSWERING and old not in _ANSWERING:
            watch.bme_set_in_request = False
        if new is DevState.PAUSE_REQ:
            watch.dirtied_since_request = False
        if new in REQUESTS and driver.loaded and not driver.up:
            self._check_answered_while_down(slot, watch, new)
        if new is DevState.READY and dev_event is DevEvent.DRIVER_READY and old in _ANSWERING:
            function = self._function(slot)
            configured = watch.bme_set_in_request or (function is not None and function.bus_master)
            if driver.loaded and driver.up and configured:
                self._check_reset_read_later(slot, watch)

    def _burst(self, function: FunctionProxy) -> None:
        """Frames keep arriving while the driver pauses: whatever it does out of order, DMA lands in the gap."""
        clock = self.world.clock

        def frame() -> None:
            function.receive(PAGE)

        for index in range(1, BURST_FRAMES + 1):
            clock.schedule(index * BURST_SPACING_NS, frame, "suite: traffic during pause")
