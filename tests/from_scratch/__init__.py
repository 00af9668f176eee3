"""Implementations written from scratch against :mod:`conformance.interfaces` and :mod:`vfmig_proto` alone.

They prove that the interfaces say enough to build a conformant implementation: each imports nothing of
``reference_impl`` and nothing of ``conformance`` beyond ``conformance.interfaces``
(``tests/test_from_scratch.py`` checks the imports, runs ``mypy --strict`` on them and runs the suite).
"""
