"""The pytest plugin: the conformance suite inside a vendor's own pytest run.

Installed with the package (entry point ``vfmig`` in the ``pytest11`` group),
so every pytest run in an environment with ``vfmig`` sees the ``--vfmig-*``
options.  It is inactive — it adds the options and nothing else, collects
nothing and imports none of the suite — unless ``--vfmig-target`` is given::

    pytest --vfmig-target device --vfmig-impl mypkg.model:make
    pytest --vfmig-target device --vfmig-impl mypkg.model:make --vfmig-profile quick --vfmig-seed 1 \\
           --vfmig-json report.json --vfmig-junit conformance.xml
    pytest -n 8 --vfmig-target device --vfmig-impl mypkg.model:make --vfmig-profile thorough

When active it adds one test item per *shard* (``vfmig-conformance[TARGET]``,
or ``vfmig-conformance[TARGET-shardI]`` with several) after the session's own
tests.  A shard is one complete conformance run (:func:`conformance.runner.run`)
with its own seed, ``seed + 1000 * i`` (:func:`conformance.parallel.shard_seed`).
There is one shard unless ``--vfmig-shards N`` says otherwise or the run is
distributed with pytest-xdist (``-n``), where the default is one shard per
worker.  An item fails when its run is not conformant (a MUST failed, a step
timed out or raised) or the run itself had a problem; its failure message lists
the failing requirements with their seeds and runnable reproductions.  SHOULD
warnings do not fail it; the terminal summary lists them.

At the end of the session the reports (``--vfmig-json``, ``--vfmig-junit``,
``--vfmig-markdown``) are written once, merged over the shards
(:func:`conformance.parallel.merge_reports`): every shard writes its JSON into a
directory that the controlling process chose (under xdist, workers get it
from the controller), and the controlling process merges what is there.

Hypothesis keeps the examples it found per implementation: in
``--vfmig-database DIR`` (default ``.hypothesis/vfmig`` under pytest's
rootdir), one subdirectory per target and implementation (named by a digest
of the factory's module source), so one vendor's failures are never replayed
on another's model.

The implementation must be importable by the pytest process: install it, or
add its directory with pytest's ``pythonpath`` setting.  With plugin
autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``), load the plugin with
``-p vfmig``; ``-p conformance.pytest_plugin`` is for an environment where the
package is importable but not installed (with the entry point installed too,
pytest would register the module twice and refuse).
"""

from __future__ import annotations

import pytest

TARGETS = ("device", "bridge", "hypervisor")
"""The values of :class:`vfmig_proto.states.Target` (kept literal so that an inactive plugin imports nothing)."""

SESSION_PLUGIN = "vfmig-conformance-session"
"""The name the active plugin's session object is registered under."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--vfmig-*`` options."""
    group = parser.getgroup("vfmig", "vfmig conformance (inactive unless --vfmig-target is given)")
    group.addoption(
        "--vfmig-target",
        choices=TARGETS,
        default=None,
        help="run the vfmig conformance suite for this target",
    )
    group.addoption(
        "--vfmig-impl",
        metavar="MODULE:FACTORY",
        default=None,
        help="the implementation under test (default: the reference implementation of the target)",
    )
    group.addoption(
        "--vfmig-profile", metavar="PROFILE", default="default", help="quick, default or thorough (default: default)"
    )
    group.addoption("--vfmig-seed", metavar="N", type=int, default=None, help="seed of the run (default: random)")
    group.addoption(
        "--vfmig-timeout",
        metavar="SECONDS",
        type=float,
        default=5.0,
        help="longest time one step of the implementation may take (default: 5; 0: no limit)",
    )
    group.addoption(
        "--vfmig-requirement",
        metavar="ID",
        action="append",
        default=None,
        help="check only this requirement (repeatable)",
    )
    group.addoption("--vfmig-json", metavar="PATH", default=None, help="write the JSON report to PATH")
    group.addoption("--vfmig-junit", metavar="PATH", default=None, help="write the JUnit XML report to PATH")
    group.addoption("--vfmig-markdown", metavar="PATH", default=None, help="write the Markdown report to PATH")
    group.addoption(
        "--vfmig-shards",
        metavar="N",
        type=int,
        default=None,
        help="run N independent shards, seeds seed + 1000*i (default: 1, or one per xdist worker)",
    )
    group.addoption(
        "--vfmig-database",
        metavar="DIR",
        default=None,
        help="where Hypothesis keeps examples, per implementation (default: ROOTDIR/.hypothesis/vfmig)",
    )
    group.addoption(
        "--vfmig-shard-dir",
        metavar="DIR",
        default=None,
        help="where each shard writes its JSON report (default: a temporary directory)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Activate the plugin when ``--vfmig-target`` is given."""
    if config.getoption("vfmig_target") is None:
        return
    from conformance.pytest_session import ConformanceSession  # noqa: PLC0415 - only an active plugin loads the suite

    config.pluginmanager.register(ConformanceSession(config), SESSION_PLUGIN)
