"""A device implementation whose function's ``config_read`` takes no width."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.device import VirtualFunction

from .reference_halves import ReferenceDriverHalf, ReferenceFunctionHalf


class DwordOnlyFunction(VirtualFunction):
    """The mistake: ``config_read(offset)``; the suite calls ``config_read(offset, width)``."""

    def config_read(self, offset: int) -> int:  # type: ignore[override]
        return super().config_read(offset & ~3, 4)


@dataclass(frozen=True)
class DwordOnlyDevice(ReferenceFunctionHalf, ReferenceDriverHalf):
    function_class = DwordOnlyFunction


def make() -> DwordOnlyDevice:
    return DwordOnlyDevice()
