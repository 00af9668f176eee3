"""The built site in a real browser: no table or code block runs out of its column out of reach.

The site is built once for the module and measured in headless Chromium at a desktop width and a phone
width.  A block wider than the content column passes only inside a scrolling container that itself stays
in the column; at the desktop width, tables must fit outright, because a table taller than the screen
shows its scroll bar only at its bottom.  Screenshots of the register chapter and the traceability page are
kept in the build directory (``_layout/``) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from site_layout import Block, chromium, measure, screenshot
from sphinx.cmd.build import build_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

ROOT = Path(__file__).resolve().parents[1]
DESKTOP, PHONE = 1400, 390
MEASURED_DIRECTORIES = ("spec", "guides")
MEASURED_PAGES = ("traceability.html",)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    status = build_main(["-q", "-W", "-n", "--keep-going", "-b", "html", str(ROOT / "docs"), str(out)])
    assert status == 0, "the docs build fails: run `tox -e docs` for its warnings"
    return out


def _pages(site: Path) -> list[str]:
    pages = [
        str(page.relative_to(site)) for name in MEASURED_DIRECTORIES for page in sorted((site / name).glob("*.html"))
    ]
    return [*pages, *MEASURED_PAGES]


@pytest.fixture(scope="module")
def blocks(site: Path) -> list[Block]:
    return measure(site, _pages(site), [DESKTOP, PHONE])


def _describe(found: list[Block]) -> str:
    return "\n".join(
        f"{block.page} at {block.viewport} px: {block.tag} near #{block.where} ({block.text!r}) is "
        f"{block.width} px in a {block.column} px column"
        for block in found
    )


def test_every_measured_page_reported_at_both_widths(site: Path, blocks: list[Block]) -> None:
    reported = {(block.page, block.viewport) for block in blocks}
    for page in _pages(site):
        for width in (DESKTOP, PHONE):
            assert (page, width) in reported or not _has_blocks(site / page), (page, width)


def _has_blocks(page: Path) -> bool:
    text = page.read_text(encoding="utf-8")
    return "<table" in text or "<pre" in text


def test_no_table_or_code_block_is_cut_off(blocks: list[Block]) -> None:
    clipped = [block for block in blocks if block.clipped]
    assert not clipped, "out of the column with nothing to scroll it:\n" + _describe(clipped)


def test_tables_fit_a_desktop_column(blocks: list[Block]) -> None:
    wide = [block for block in blocks if block.viewport == DESKTOP and block.tag == "table" and block.overflows]
    assert not wide, "tables that need scrolling at a desktop width:\n" + _describe(wide)


def test_register_tables_fit_a_phone_column_or_scroll(blocks: list[Block]) -> None:
    registers = [block for block in blocks if block.page == "spec/03-capability.html" and block.tag == "table"]
    assert registers, "the register chapter has no tables"
    assert all(block.scrollable for block in registers if block.overflows), _describe(registers)


def test_screenshots_of_the_register_chapter_and_the_traceability_page(site: Path) -> None:
    shots = site / "_layout"
    shots.mkdir(exist_ok=True)
    pages = (("spec/03-capability.html#spec-register-control", "registers"), ("traceability.html", "traceability"))
    for page, name in pages:
        for width in (DESKTOP, PHONE):
            target = shots / f"{name}-{width}.png"
            screenshot(site, page, target, width=width, height=1600)
            assert target.stat().st_size > 10_000, f"{target} is (nearly) empty"
