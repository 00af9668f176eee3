"""The ``device`` target: a VF device model together with its guest driver.

The world (:mod:`~conformance.suites.device.world`): the reference hypervisor
on two hosts, the reference bridge and migration core, a guest of
:data:`~conformance.suites.device.world.MEMORY_PAGES` pages, and 1 to 3
functions and drivers from the implementation under test.  The rules
(:mod:`~conformance.suites.device.rules`,
:mod:`~conformance.suites.device.scenarios`) do everything the spec lets
happen to a function: traffic, interface and driver changes, migrations,
cancellations, destination failures, surprise removal, device errors, group
resets.  The checks watch the function and its driver from outside (see
:mod:`conformance.observe`), one module of
:mod:`~conformance.suites.device.observers` per aspect: DMA and dirtying page
by page, deadlines, Bus Master Enable, interrupts, resets, DEV_STATE
transitions, the guest's config accesses and the reports the bridge receives.

:class:`DeviceSuite` is the state machine: the mixins, each derived from
:class:`~conformance.suites.device.world.DeviceWorld`, composed.  Hypothesis
collects its rules and invariants by name across them.
"""

from __future__ import annotations

from conformance.suites.device.observers.bus_master import BusMasterObserver
from conformance.suites.device.observers.config_space import ConfigSpaceObserver
from conformance.suites.device.observers.end_of_run import EndOfRunObserver
from conformance.suites.device.observers.interrupts import InterruptObserver
from conformance.suites.device.observers.transitions import TransitionObserver
from conformance.suites.device.rules import EnvironmentRules
from conformance.suites.device.scenarios import Scenarios

__all__ = ["DeviceSuite"]


class DeviceSuite(
    EnvironmentRules,
    Scenarios,
    TransitionObserver,
    BusMasterObserver,
    InterruptObserver,
    ConfigSpaceObserver,
    EndOfRunObserver,
):
    """Random interleavings around one guest's functions; checks of the device and driver requirements."""
