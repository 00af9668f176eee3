"""A hypervisor implementation whose hosts cannot be made: ``create_hypervisor`` raises."""

from __future__ import annotations

from typing import Any

from reference_impl.factories import ReferenceHypervisor
from reference_impl.hypervisor import Hypervisor


class NoHosts(ReferenceHypervisor):
    """The mistake: a host needs a configuration file the adapter never wrote."""

    def create_hypervisor(self, *arguments: Any, **keywords: Any) -> Hypervisor:
        raise FileNotFoundError("hosts.toml")


def make() -> NoHosts:
    return NoHosts()
