"""Implementations that differ from the reference only in ways the specification allows.

Each module holds variants of one target, each a zero-argument factory that ``vfmig conformance --impl
conformant_variants.MODULE:FACTORY`` (with ``tests/`` on the path) loads: a driver that dirties far more than it
must, one that takes half its acknowledgement deadline to answer a pause, one that re-posts its buffers one
at a time, a core that reads the capability with other byte lanes, a bridge that takes a step's slots in the
reverse order, hypervisors that read their dirty log more often or act on their deadlines later within
their reaction time.  The suite must judge every one of them conformant (``tests/test_conformant_variants.py``):
a verdict against one is a false positive of the suite.
"""
