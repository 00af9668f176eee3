"""Bad input to ``vfmig``: one line on standard error that names the option and the value, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import ROOT, SMALL, assert_one_line_usage_error, run_cli

from conformance.cli import EXIT_OK, EXIT_USAGE, simulation_config

BAD_SIMULATE = [
    (("--memory", "5GB"), ["--memory", "'5GB'", "GiB"]),
    (("--memory", "4097"), ["--memory", "'4097'", "4096-byte pages"]),
    (("--memory", "1e9"), ["--memory", "'1e9'", "4GiB"]),
    (("--memory", "-5GiB"), ["--memory", "'-5GiB'"]),
    (("--memory=-5GiB",), ["--memory", "'-5GiB'"]),
    (("--memory", "0"), ["--memory", "'0'"]),
    (("--memory", "4096"), ["--memory", "'4096'", "bytes, not QEMU's MiB"]),
    (("--memory", "1MiB", "--vfs", "31"), ["--memory", "'1MiB'", "--vfs"]),
    (("--seed", "-1"), ["--seed", "-1"]),
    (("--bandwidth", "-1MiB/s"), ["--bandwidth", "'-1MiB/s'"]),
    (("--bandwidth", "0"), ["--bandwidth", "'0'"]),
    (("--downtime-limit", "-5ms"), ["--downtime-limit", "'-5ms'"]),
    (("--downtime-limit", "0"), ["--downtime-limit", "'0'"]),
    (("--precopy-limit", "-1s"), ["--precopy-limit", "'-1s'"]),
    (("--link-latency", "-0.1ms"), ["--link-latency", "'-0.1ms'"]),
    (("--dma-rate", "-1Gb/s"), ["--dma-rate", "'-1Gb/s'"]),
    (("--dma-read-rate", "1e999"), ["--dma-read-rate", "'1e999'"]),
    (("--cpu-dirty-rate", "lots"), ["--cpu-dirty-rate", "'lots'"]),
    (("--max-rounds", "-1"), ["--max-rounds", "-1"]),
    (("--buffers", "0"), ["--buffers", "0"]),
    (("--vfs", "0"), ["--vfs", "0"]),
    (("--vfs", "32"), ["--vfs", "32"]),
    (("--vfs", "two"), ["--vfs", "'two'"]),
    (("--slots", "1"), ["--slots", "1", "--vfs"]),
    (("--slots", "32"), ["--slots", "32"]),
    (("--migrations", "0"), ["--migrations", "0"]),
    (("--migrations", "-3"), ["--migrations", "-3"]),
    (("--ack-timeout-ms", "0"), ["--ack-timeout-ms", "0"]),
    (("--ack-timeout-ms", "65536"), ["--ack-timeout-ms", "65536", "65535"]),
    (("--cpu-working-set", "0"), ["--cpu-working-set", "0"]),
    (("--cpu-working-set", "1.5"), ["--cpu-working-set", "1.5"]),
    (("--cpu-working-set", "-0.5"), ["--cpu-working-set", "-0.5"]),
    (("--cpu-working-set", "nan"), ["--cpu-working-set", "nan"]),
    (("--fault", "meteor-strike"), ["--fault", "meteor-strike"]),
]


@pytest.mark.parametrize(("args", "mentions"), BAD_SIMULATE, ids=" ".join)
def test_bad_simulate_input_is_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], mentions: list[str]
) -> None:
    code, out, err = run_cli(capsys, "simulate", *SMALL, *args)
    assert out == ""
    assert_one_line_usage_error(code, err, "vfmig simulate: ", *mentions)


BAD_CONFIG_DUMP = [
    (("--vfs", "0"), ["--vfs", "0"]),
    (("--vfs", "40"), ["--vfs", "40"]),
    (("--slots", "0"), ["--slots", "0"]),
    (("--slots", "-2"), ["--slots", "-2"]),
    (("--vfs", "4", "--slots", "2"), ["--slots", "2", "--vfs 4"]),
    (("--seed", "-1", "--at", "booted"), ["--seed", "-1"]),
    (("--at", "nowhere"), ["--at", "nowhere"]),
]


@pytest.mark.parametrize(("args", "mentions"), BAD_CONFIG_DUMP, ids=" ".join)
def test_bad_config_dump_input_is_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], mentions: list[str]
) -> None:
    code, out, err = run_cli(capsys, "config-dump", *args)
    assert out == ""
    assert_one_line_usage_error(code, err, "vfmig config-dump: ", *mentions)


def test_qemu_sizes_are_binary(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulation_config(["--memory", "4G"]).memory_bytes == 4 << 30
    assert simulation_config(["--memory", "64M"]).memory_bytes == 64 << 20
    code, _, err = run_cli(capsys, "simulate", "--memory", "64M", "--json")
    assert code == EXIT_OK, err


def test_negative_values_written_with_an_equals_sign_are_read_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, apart = run_cli(capsys, "simulate", "--downtime-limit", "-5ms")
    _, _, joined = run_cli(capsys, "simulate", "--downtime-limit=-5ms")
    assert apart == joined
    assert "expected one argument" not in apart


def test_an_unknown_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "simulate", "--database", "/etc/passwd")
    assert_one_line_usage_error(code, err, "--database")


def test_the_installed_command_prints_no_traceback_either() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "simulate", "--seed", "-1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == EXIT_USAGE
    assert result.stderr == "vfmig simulate: --seed: -1 is out of range (at least 0)\n"
