"""The checks: methods that the rules of another module reach through ``self``."""

from __future__ import annotations

from conformance.checks import ConformanceMachine

SHARED = {"quiet": "VFM-FN-004"}
"""A table a check takes its requirement from."""


def implementation_call() -> None:
    """Stands for a call into the implementation that raises before any check runs."""
    raise RuntimeError("the implementation broke")


class Observers(ConformanceMachine):
    def observe(self) -> None:
        self.checks.that("VFM-FN-001", True, "seen")
        self.deeper()

    def deeper(self) -> None:
        self.checks.record("VFM-FN-002", True, "seen deeper")

    def overridden(self) -> None:
        self.checks.that("VFM-FN-005", True, "never reached: Rules.overridden comes first in the MRO")

    def by_table(self, name: str) -> None:
        self.checks.that(SHARED[name], True, "from a table")
