"""The boundary between the conformance suite and an implementation under test, one module per target.

* :mod:`conformance.interfaces.common`: what the suite hands *to* an implementation (the simulated clock,
  the event sink, the guest's memory, the DMA page allocator, a function's identity);
* :mod:`conformance.interfaces.device`: a virtual function and its guest driver (the ``device`` target), and
  the migration core the driver works with;
* :mod:`conformance.interfaces.bridge`: the migration bridge (the ``bridge`` target), including the restore
  of a bridge on the destination of a migration and the host's group reset;
* :mod:`conformance.interfaces.hypervisor`: one host of the migration orchestration (the ``hypervisor``
  target).

Every interface is a :class:`typing.Protocol` typed with protocol-level types only (the enums of
:mod:`vfmig_proto`, ints, bytes and the small protocols of :mod:`~conformance.interfaces.common`), so that an
implementation written from scratch needs nothing but this package and :mod:`vfmig_proto`.  Nothing here
imports :mod:`reference_impl`.

Where a method's docstring says it is *judged under* a requirement, an exception or a hang in that method,
when no check of the suite was waiting for its answer, is that requirement's ``error`` or ``timeout``.
"""
