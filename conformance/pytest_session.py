"""The active pytest plugin: the conformance items and the hooks that run, merge and report them.

:mod:`conformance.pytest_plugin` registers one :class:`ConformanceSession` when
``--vfmig-target`` is given; see that module for what a user sees.  Here:

- ``pytest_configure`` (the constructor) checks the options, as
  ``vfmig conformance`` does, and turns a bad one into a pytest usage error;
- the controlling process (the only one without xdist, the controller with it)
  picks the run's seed and the directory the shards write their JSON reports
  into, and hands both to the xdist workers (``pytest_configure_node``), so that
  every worker collects the same items and runs the same shards;
- ``pytest_collection_modifyitems`` appends one :class:`ConformanceItem` per
  shard (before ``-k``/``-m`` deselection, which therefore applies to them);
- each item runs :func:`conformance.harness.run_isolated` (the suite and the implementation in a supervised
  worker process) and writes its shard report;
- ``pytest_sessionfinish`` in the controlling process merges the shard reports
  and writes the requested reports; ``pytest_terminal_summary`` prints the
  merged summary.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import AdapterProblem, Interrupted, run_isolated
from conformance.parallel import SHARD_PATTERN, merge_reports, read_shards, shard_seed, write_shard
from conformance.preflight import load_implementation
from conformance.reports import write_reports
from conformance.runner import DEFAULT_IMPLEMENTATIONS, PROFILES, UsageError, target_requirements
from conformance.summary import failure_text, summary_text
from conformance.verdicts import RunReport, Target

WORKER_SEED = "vfmig_seed"
"""The key of the run's seed in an xdist worker's ``workerinput``."""
WORKER_SHARD_DIR = "vfmig_shard_dir"
"""The key of the shard directory in an xdist worker's ``workerinput``."""
ITEM_NAME = "vfmig-conformance"


class ConformanceFailure(Exception):  # noqa: N818 - the item's failure, shown through repr_failure
    """A shard's run found the implementation not conformant (or could not finish)."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(f"{report.implementation} is not conformant")
        self.report = report


class ConformanceItem(pytest.Item):
    """One shard: a complete conformance run with its own seed."""

    def __init__(self, *, session_plugin: ConformanceSession, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_plugin = session_plugin
        self.index = index

    def runtest(self) -> None:
        """Run the shard; fail if the implementation is not conformant or the run had a problem."""
        report = self.session_plugin.run_shard(self.index)
        if not report.conformant or report.suite_errors:
            raise ConformanceFailure(report)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        """The failing requirements with their seeds and reproductions."""
        if isinstance(excinfo.value, ConformanceFailure):
            return failure_text(excinfo.value.report)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where pytest says the item is."""
        return self.path, None, f"vfmig conformance of {self.session_plugin.implementation}, shard {self.index}"


def _path(value: str | None, base: Path) -> Path | None:
    return None if value is None else base / Path(value).expanduser()


class ConformanceSession:
    """The plugin's state and hooks for one pytest session with ``--vfmig-target``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        option = config.option
        self.target = Target(option.vfmig_target)
        self.implementation: str = option.vfmig_impl or DEFAULT_IMPLEMENTATIONS[self.target]
        self.profile: str = option.vfmig_profile
        self.timeout_s: float = option.vfmig_timeout
        self.requirements: list[str] | None = option.vfmig_requirement
        self._check_options()
        base = config.invocation_params.dir
        self.database_dir = _path(option.vfmig_database, base) or config.rootpath / ".hypothesis" / "vfmig"
        self.json_path = _path(option.vfmig_json, base)
        self.junit_path = _path(option.vfmig_junit, base)
        self.markdown_path = _path(option.vfmig_markdown, base)
        self.started = datetime.now(UTC)
        self.merged: RunReport | None = None
        self._owned_dir: Path | None = None
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        if workerinput is not None:  # an xdist worker: the controller decided
            self.is_worker = True
            self.seed: int = workerinput[WORKER_SEED]
            self.shard_dir = Path(workerinput[WORKER_SHARD_DIR])
            default_shards = int(workerinput.get("workercount", 1))
        else:
            self.is_worker = False
            seed: int | None = option.vfmig_seed
            self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
            given = _path(option.vfmig_shard_dir, base)
            if given is None:
                self._owned_dir = self.shard_dir = Path(tempfile.mkdtemp(prefix="vfmig-shards-"))
            else:
                self.shard_dir = given
                self.shard_dir.mkdir(parents=True, exist_ok=True)
                for stale in self.shard_dir.glob(SHARD_PATTERN):
                    stale.unlink()
            default_shards = 1
        shards: int | None = option.vfmig_shards
        self.shards = shards if shards is not None else default_shards

    def _check_options(self) -> None:
        option = self.config.option
        try:
            if self.profile not in PROFILES:
                raise UsageError(f"unknown profile {self.profile!r}: choose one of {', '.join(PROFILES)}")
            if option.vfmig_shards is not None and option.vfmig_shards < 1:
                raise UsageError(f"--vfmig-shards must be at least 1, not {option.vfmig_shards}")
            if self.timeout_s < 0:
                raise UsageError(f"--vfmig-timeout must not be negative, not {self.timeout_s:g}")
            load_implementation(self.target, self.implementation)
            target_requirements(self.target, self.requirements)
        except UsageError as error:
            raise pytest.UsageError(f"vfmig: {error}") from error

    def run_shard(self, index: int) -> RunReport:
        """Run shard ``index`` in a supervised worker process and write its report into the shard directory.

        An implementation that cannot be used gives a report in which nothing was judged (the item fails);
        Ctrl-C writes the report of what was judged and stops the session.
        """
        try:
            report = run_isolated(
                self.target,
                self.implementation,
                profile=self.profile,
                seed=shard_seed(self.seed, index),
                timeout_s=self.timeout_s,
                requirements=self.requirements,
                database_dir=self.database_dir,
            )
        except AdapterProblem as problem:
            report = problem.report
        except Interrupted as interrupted:
            write_shard(interrupted.report, self.shard_dir, index)
            raise KeyboardInterrupt from None
        write_shard(report, self.shard_dir, index)
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: tell a worker the run's seed and where shards write their reports."""
        node.workerinput[WORKER_SEED] = self.seed
        node.workerinput[WORKER_SHARD_DIR] = str(self.shard_dir)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        """Append one item per shard."""
        for index in range(self.shards):
            suffix = self.target.value if self.shards == 1 else f"{self.target.value}-shard{index}"
            name = f"{ITEM_NAME}[{suffix}]"
            items.append(ConformanceItem.from_parent(session, name=name, nodeid=name, session_plugin=self, index=index))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Controlling process: merge the shard reports and write the requested reports."""
        if self.is_worker:
            return
        shards = read_shards(self.shard_dir)
        if not shards:
            return
        self.merged = merge_reports(shards, seed=self.seed, expected=self.shards)
        write_reports(
            self.merged,
            json=self.json_path,
            junit=self.junit_path,
            markdown=self.markdown_path,
            started=self.started,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The merged verdicts, without reproductions (the failing items show them)."""
        if self.merged is None:
            return
        terminalreporter.write_sep("=", "vfmig conformance")
        terminalreporter.write(summary_text(self.merged, not_covered=False, reproductions=False))
        for path in (self.json_path, self.junit_path, self.markdown_path):
            if path is not None:
                terminalreporter.write_line(f"report written to {path}")

    def pytest_unconfigure(self) -> None:
        """Remove the shard directory this session created."""
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
