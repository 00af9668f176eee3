"""Watching a function from outside: finding its capabilities by config reads (:mod:`conformance.observe`)."""

from __future__ import annotations

from typing import Any

from conformance.observe import FunctionProxy, find_capability
from reference_impl.clock import SimClock
from reference_impl.device import MSIX_CAP_OFFSET, PCIE_CAP_OFFSET
from reference_impl.events import EventBus
from reference_impl.factories import ReferenceDevice
from vfmig_proto.pci import PCI_CAP_ID_EXP, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CONFIG_SIZE


class _Function:
    """A function whose config space is a byte array, and can be made to read all ones (as in a reset)."""

    def __init__(self, config: bytes) -> None:
        self.config = bytearray(config)
        self.all_ones = False
        self.reads = 0
        self.bus_master = False
        self.bme_listener: Any = None
        self.interrupt_sink: Any = None

    def config_read(self, offset: int, width: int) -> int:
        self.reads += 1
        if self.all_ones:
            return (1 << (8 * width)) - 1
        return int.from_bytes(self.config[offset : offset + width], "little")


def _reference_config() -> bytes:
    clock = SimClock()
    function = ReferenceDevice().create_function("vf0", clock, EventBus(clock), None)
    return bytes(function.config_read(offset, 1) for offset in range(PCI_CONFIG_SIZE))


def _proxy(function: _Function) -> FunctionProxy:
    return FunctionProxy(function, lambda proxy, enabled: None, lambda proxy: None)


def test_the_reference_function_s_capabilities_are_found_where_it_puts_them() -> None:
    function = _Function(_reference_config())
    assert find_capability(function.config_read, PCI_CAP_ID_EXP) == PCIE_CAP_OFFSET
    assert find_capability(function.config_read, PCI_CAP_ID_MSIX) == MSIX_CAP_OFFSET
    assert find_capability(function.config_read, PCI_CAP_ID_MSI) is None


def test_a_function_reading_all_ones_has_no_capability_rather_than_a_broken_list() -> None:
    function = _Function(_reference_config())
    function.all_ones = True
    assert find_capability(function.config_read, PCI_CAP_ID_MSIX) is None


def test_the_proxy_walks_the_list_once_and_checks_the_id_on_each_later_lookup() -> None:
    function = _Function(_reference_config())
    proxy = _proxy(function)
    assert proxy.capability(PCI_CAP_ID_MSIX) == MSIX_CAP_OFFSET
    before = function.reads
    assert proxy.capability(PCI_CAP_ID_MSIX) == MSIX_CAP_OFFSET
    assert function.reads == before + 1
    function.all_ones = True
    assert proxy.capability(PCI_CAP_ID_MSIX) is None
    function.all_ones = False
    assert proxy.capability(PCI_CAP_ID_MSIX) == MSIX_CAP_OFFSET
