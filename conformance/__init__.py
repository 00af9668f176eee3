"""conformance: the conformance suite and the ``vfmig`` command.

Adapter interfaces, Hypothesis state machines, verdicts and reports, the
command-line front door (:mod:`conformance.cli`) and the pytest plugin.
"""
