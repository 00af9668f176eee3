"""The rules: each reaches checks that live in :mod:`observers`."""

from __future__ import annotations

from hypothesis.stateful import invariant, rule

from conformance.checks import ConformanceMachine, step

from .observers import implementation_call


class Rules(ConformanceMachine):
    @rule()
    @step()
    def poke(self) -> None:
        implementation_call()
        self.observe()  # type: ignore[attr-defined]  # the Observers mixin's, in the assembled machine

    @rule()
    @step("VFM-FN-003")
    def hand_listed(self) -> None:
        """Declares a requirement whose check it only sets off (an event listener's)."""
        self.overridden()

    def overridden(self) -> None:
        self.by_table("quiet")  # type: ignore[attr-defined]

    @invariant()
    @step()
    def nothing_checked(self) -> None:
        pass
