"""What the bridge suite observes of a bridge, one module per aspect, each a mixin of the suite.

* :mod:`~conformance.suites.bridge.observers.discovery`: the header, the capability list and where the
  capability is placed, and the reset value;
* :mod:`~conformance.suites.bridge.observers.capability`: the capability's registers after every step, against
  the model;
* :mod:`~conformance.suites.bridge.observers.reports`: what the bridge does with a driver report;
* :mod:`~conformance.suites.bridge.observers.interrupts`: the interrupts a step signals, and the SHPC;
* :mod:`~conformance.suites.bridge.observers.hypervisor_seat`: what the bridge tells the hypervisor;
* :mod:`~conformance.suites.bridge.observers.versions`: a bridge of a later minor version;
* :mod:`~conformance.suites.bridge.observers.security`: the measurements of VFM-SEC-002.
"""
