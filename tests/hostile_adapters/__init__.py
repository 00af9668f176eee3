"""Adapter modules with one mistake each, for the pre-flight check's tests (``tests/test_preflight.py``).

Each module's ``make`` is what a vendor's ``--impl MODULE:FACTORY`` would name.  The adapter with a syntax
error is not here (it would break the linters): the tests write it into a temporary directory.
"""
