"""The hypervisor suite's observers: one mixin per observed aspect of the hypervisor, and the watched reference
objects (:mod:`~conformance.suites.hypervisor.observers.watched`) that report to them.
"""
