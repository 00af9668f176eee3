"""reference_impl: the executable meaning of ``spec/``.

The state-machine reference implementation of the three roles (migration
bridge, VF device with its guest driver side, hypervisor on source and
destination) lives here.  It imports :mod:`vfmig_proto` only and keeps no
private copy of a transition rule.
"""
