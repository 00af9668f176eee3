"""The pre-flight check (conformance/preflight.py): one line naming each adapter mistake; good adapters pass.

The adapters with a mistake are the modules of ``tests/hostile_adapters`` (one mistake each), and a module
with a syntax error that the tests write into a temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conformance.catalogue import all_faults
from conformance.interfaces.bridge import BridgeUnderTest
from conformance.interfaces.device import DriverUnderTest, FunctionUnderTest
from conformance.interfaces.hypervisor import HypervisorUnderTest
from conformance.preflight import (
    AdapterError,
    MemberKind,
    check_implementation,
    check_role,
    load_implementation,
    protocol_members,
)
from conformance.runner import DEFAULT_IMPLEMENTATIONS, UsageError
from conformance.verdicts import Target
from reference_impl.clock import SimClock
from reference_impl.device import VirtualFunction
from reference_impl.events import EventBus

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "tests.hostile_adapters"
EXAMPLE = "examples.vendor_device.acme_vf:make"


@pytest.fixture(autouse=True)
def checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The checkout's root on ``sys.path`` (``tests.hostile_adapters``, ``examples``); adapters imported afresh."""
    monkeypatch.syspath_prepend(str(ROOT))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith((HOSTILE, "bad_adapter")):
            del sys.modules[name]


def _mistake(target: Target, spec: str) -> str:
    """The one-line message the pre-flight check gives for ``spec``."""
    with pytest.raises(AdapterError) as caught:
        check_implementation(target, load_implementation(target, spec), spec)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------- good adapters


@pytest.mark.parametrize(
    ("target", "spec"),
    [*DEFAULT_IMPLEMENTATIONS.items(), (Target.DEVICE, EXAMPLE)],
    ids=["device", "bridge", "hypervisor", "acme-example"],
)
def test_the_reference_and_the_example_pass_quickly(target: Target, spec: str) -> None:
    started = time.perf_counter()
    check_implementation(target, load_implementation(target, spec), spec)
    assert time.perf_counter() - started < 0.5


def test_every_catalogued_fault_passes() -> None:
    """The faults are wrong in behaviour, not in shape: the suite, not the pre-flight check, must find them."""
    for fault in all_faults():
        check_implementation(fault.target, load_implementation(fault.target, fault.factory), fault.factory)


# ---------------------------------------------------------------------------------------- the factory


def test_a_factory_that_returns_none() -> None:
    assert _mistake(Target.DEVICE, f"{HOSTILE}.returns_none:make") == (
        f"{HOSTILE}.returns_none:make returned None, not a device implementation "
        "(it needs create_function and create_driver)"
    )


def test_a_factory_of_another_target() -> None:
    message = _mistake(Target.DEVICE, f"{HOSTILE}.wrong_target:make")
    assert message.endswith(
        "returned a ReferenceBridge, not a device implementation (it needs create_function and create_driver)"
    ), message


def test_a_factory_that_returns_a_class() -> None:
    message = _mistake(Target.DEVICE, f"{HOSTILE}.returns_class:make")
    assert message.endswith("returned the class ReferenceDevice, not an instance of it (a device implementation)")


def test_an_implementation_without_create_driver() -> None:
    message = _mistake(Target.DEVICE, f"{HOSTILE}.missing_driver:make")
    assert message == (
        f"{HOSTILE}.missing_driver:make returned a FunctionsOnly without create_driver; "
        "a device implementation needs create_function and create_driver"
    )


def test_a_factory_that_needs_arguments() -> None:
    with pytest.raises(AdapterError) as caught:
        load_implementation(Target.DEVICE, f"{HOSTILE}.needs_arguments:make")
    assert str(caught.value) == (
        f"{HOSTILE}.needs_arguments:make needs arguments (vendor); the factory is called with none"
    )


def test_a_constructor_that_raises_is_named_with_its_line() -> None:
    message = _mistake(Target.DEVICE, f"{HOSTILE}.constructor_raises:make")
    path = Path("tests", "hostile_adapters", "constructor_raises.py")
    line = _line_of(ROOT / path, "raise ValueError")
    assert message == (
        f"{HOSTILE}.constructor_raises:make raised ValueError: cannot open /dev/acme0: no such device "
        f"({_shown(path)}, line {line}, in __init__)"
    )


# ---------------------------------------------------------------------------------------- the module


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "bad_adapter_syntax.py"
    module.write_text("from reference_impl.factories import device\n\n\ndef make()\n    return device()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AdapterError) as caught:
        load_implementation(Target.DEVICE, "bad_adapter_syntax:make")
    assert str(caught.value) == f"{module}, line 4: expected ':'"


def test_an_exception_at_import_time_names_its_line() -> None:
    with pytest.raises(AdapterError) as caught:
        load_implementation(Target.DEVICE, f"{HOSTILE}.import_raises:make")
    path = Path("tests", "hostile_adapters", "import_raises.py")
    assert str(caught.value) == (
        f"importing {HOSTILE}.import_raises raised ConnectionRefusedError: the Acme model server at "
        f"localhost:7000 refused the connection ({_shown(path)}, line {_line_of(ROOT / path, 'raise ')}, in _connect)"
    )


def test_a_missing_import_inside_the_adapter_is_not_taken_for_a_missing_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad_adapter_dependency.py").write_text("import acme_model_bindings  # noqa\n\nmake = object\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        AdapterError,
        match=r"^importing bad_adapter_dependency raised ModuleNotFoundError: "
        r"No module named 'acme_model_bindings' \(.*bad_adapter_dependency.py, line 1, in <module>\)$",
    ):
        load_implementation(Target.DEVICE, "bad_adapter_dependency:make")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_vendor.model:make", r"^cannot import 'no_such_vendor\.model': there is no module 'no_such_vendor' "),
        (
            f"{HOSTILE}.returns_none:build",
            r"^tests\.hostile_adapters\.returns_none has no 'build' \(it defines: make\)$",
        ),
        (f"{HOSTILE}.import_raises", r"^'tests\.hostile_adapters\.import_raises' is not MODULE:FACTORY"),
        ("reference_impl.factories:CONFORMANCE_BUFFERS", r"is an int, not a factory"),
    ],
    ids=["no-module", "no-factory", "no-colon", "not-callable"],
)
def test_names_that_lead_to_no_factory(spec: str, expected: str) -> None:
    with pytest.raises(AdapterError, match=expected):
        load_implementation(Target.DEVICE, spec)


# ---------------------------------------------------------------------------------------- the role objects


def test_create_function_returning_a_str() -> None:
    assert _mistake(Target.DEVICE, f"{HOSTILE}.function_is_str:make") == (
        "the implementation's create_function returned a str, not a function "
        "(FunctionUnderTest: name, memory, interrupt_sink, bme_listener, ...)"
    )


def test_a_method_that_does_not_take_the_suites_arguments() -> None:
    message = _mistake(Target.DEVICE, f"{HOSTILE}.wrong_signature:make")
    assert message == (
        "the implementation's function's config_read cannot be called as the suite calls it, with (offset, width): "
        "too many positional arguments"
    )


def test_a_property_of_the_wrong_type_behind_getattr() -> None:
    message = _mistake(Target.BRIDGE, f"{HOSTILE}.bridge_state_str:make")
    assert message == "the implementation's bridge's mig_state is a str, not a MigState (BridgeUnderTest.mig_state)"


class _NumpyFunction(VirtualFunction):
    """A model that answers config reads with numpy integers, as a model over numpy arrays does."""

    def config_read(self, offset: int, width: int) -> int:
        return np.uint32(super().config_read(offset, width))  # type: ignore[return-value]


class _TextFunction(VirtualFunction):
    """A model that answers config reads with hex text."""

    def config_read(self, offset: int, width: int) -> int:
        return hex(super().config_read(offset, width))  # type: ignore[return-value]


def test_a_numpy_integer_is_an_int_but_text_is_not() -> None:
    """The suite converts config reads with int(): numpy's integers pass, a str does not."""
    clock = SimClock()
    check_role(_NumpyFunction("vf0", clock, EventBus(clock)), FunctionUnderTest, "create_function")
    with pytest.raises(AdapterError) as caught:
        check_role(_TextFunction("vf0", clock, EventBus(clock)), FunctionUnderTest, "create_function")
    assert str(caught.value) == (
        "the implementation's function's config_read(0, 2) returned a str, not an int (FunctionUnderTest.config_read)"
    )


def test_a_maker_that_raises() -> None:
    message = _mistake(Target.HYPERVISOR, f"{HOSTILE}.host_raises:make")
    path = Path("tests", "hostile_adapters", "host_raises.py")
    assert message == (
        "the implementation's create_hypervisor raised FileNotFoundError: hosts.toml "
        f"({_shown(path)}, line {_line_of(ROOT / path, 'raise ')}, in create_hypervisor)"
    )


# ---------------------------------------------------------------------------------------- the protocols


def test_the_protocols_declare_what_the_suites_use() -> None:
    """The members the suites read that the protocols once lacked: the pre-flight check requires them."""
    assert protocol_members(DriverUnderTest)["function"] is MemberKind.PROPERTY
    assert protocol_members(BridgeUnderTest)["bus"] is MemberKind.PROPERTY
    assert protocol_members(FunctionUnderTest)["config_read"] is MemberKind.METHOD
    assert protocol_members(HypervisorUnderTest)["make_memory"] is MemberKind.ATTRIBUTE


def test_an_adapter_error_is_a_usage_error() -> None:
    """The CLI turns a UsageError into exit status 2 and one line on stderr."""
    assert issubclass(AdapterError, UsageError)


def test_the_cli_gives_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "conformance",
            "--target",
            "device",
            "--profile",
            "quick",
            "--impl",
            f"{HOSTILE}.function_is_str:make",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "vfmig conformance: the implementation's create_function returned a str, not a function "
        "(FunctionUnderTest: name, memory, interrupt_sink, bme_listener, ...)"
    ]
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------- helpers


def _line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that contains ``text``."""
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _shown(relative: Path) -> str:
    """How a message shows a file of the checkout: relative to the current directory when it is under it."""
    try:
        return str((ROOT / relative).relative_to(Path.cwd()))
    except ValueError:
        return str(ROOT / relative)
