"""A bridge implementation whose bridge gives MIG_STATE as its name, not a MigState."""

from __future__ import annotations

from reference_impl.bridge import MigrationBridge
from reference_impl.events import EventBus
from vfmig_proto.layout import CapabilityParams


class HexBridge:
    """The mistake: ``mig_state`` is a property that returns the state's name, not a ``MigState``."""

    def __init__(self, bus: EventBus, params: CapabilityParams, name: str) -> None:
        self.inner = MigrationBridge(bus, params, name=name)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    @property
    def mig_state(self) -> str:
        return self.inner.mig_state.name


class HexBridges:
    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> HexBridge:
        return HexBridge(bus, params, name)


def make() -> HexBridges:
    return HexBridges()
