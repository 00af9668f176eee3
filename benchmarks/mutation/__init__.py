"""Mutation testing of the reference implementation against the conformance suite (docs/mutation.rst)."""
