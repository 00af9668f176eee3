"""The built site in a real browser: no table or code block runs out of its column out of reach.

The site is built once for the module and measured in headless Chromium at a desktop width and a phone
width.  A block wider than the content column passes only inside a scrolling container that itself stays
in the column; at the desktop width, tables must fit outright, because a table taller than the screen
shows its scroll bar only at its bottom.  No diagram's text may render smaller than 11 CSS pixels at either
width, and every internal link of the site must lead to a page and an id that exist.  Screenshots of the
register chapter, the device state diagram, a flow and the traceability page are kept in the build directory
(``_layout/``) for a person to look at.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from site_layout import Block, Layout, chromium, measure_layout, screenshot
from sphinx.cmd.build import build_main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

ROOT = Path(__file__).resolve().parents[1]
DESKTOP, PHONE = 1400, 390
MEASURED_DIRECTORIES = ("spec", "guides")
MEASURED_PAGES = ("traceability.html", "architecture.html")
SMALLEST_DIAGRAM_FONT = 11
"""CSS pixels: text of a diagram smaller than this cannot be read at that width."""
SCREENSHOTS = (
    ("spec/03-capability.html#spec-register-control", "registers"),
    ("spec/04-state-machines.html#spec-device-diagram", "device-diagram"),
    ("spec/07-flows.html#spec-7-1-1", "flow"),
    ("traceability.html", "traceability"),
)


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
def layout(site: Path) -> Layout:
    return measure_layout(site, _pages(site), [DESKTOP, PHONE])


@pytest.fixture(scope="module")
def blocks(layout: Layout) -> list[Block]:
    return layout.blocks


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


def test_diagrams_are_measured_on_the_state_machine_chapter(layout: Layout) -> None:
    measured = {(diagram.page, diagram.viewport) for diagram in layout.diagrams}
    assert {("spec/04-state-machines.html", DESKTOP), ("spec/04-state-machines.html", PHONE)} <= measured


def test_no_diagram_text_renders_under_11_px(layout: Layout) -> None:
    small = [diagram for diagram in layout.diagrams if diagram.smallest_font < SMALLEST_DIAGRAM_FONT]
    assert not small, "diagrams whose text is too small to read:\n" + "\n".join(
        f"{d.page} at {d.viewport} px: {d.source} drawn {d.width:.0f} px wide, text {d.smallest_font:.1f} px"
        for d in small
    )


def test_a_diagram_opens_full_size(site: Path) -> None:
    chapter = (site / "spec/04-state-machines.html").read_text(encoding="utf-8")
    links = re.findall(r'<a class="vfm-diagram-open" href="([^"]+\.svg)"[^>]*><img src="([^"]+)"', chapter)
    assert len(links) >= 2, "the state diagrams are not links to their SVG"
    assert all(href == src for href, src in links)


class _Anchors(HTMLParser):
    """The ids of a page and the targets of its links."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.duplicates: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            if attributes["id"] in self.ids:
                self.duplicates.append(str(attributes["id"]))
            self.ids.add(str(attributes["id"]))
        if tag == "a" and attributes.get("href"):
            self.links.append(str(attributes["href"]))


def _read_anchors(page: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_leads_to_a_page_and_an_id_that_exist(site: Path) -> None:
    pages = {page.resolve(): _read_anchors(page) for page in site.rglob("*.html") if "_layout" not in page.parts}
    broken = []
    for page, anchors in pages.items():
        for link in anchors.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("mailto:"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if target.suffix != ".html":
                if not target.exists():
                    broken.append(f"{page.relative_to(site.resolve())}: {link}")
                continue
            found = pages.get(target)
            if found is None or (parts.fragment and unquote(parts.fragment) not in found.ids):
                broken.append(f"{page.relative_to(site.resolve())}: {link}")
    assert sum(len(anchors.links) for anchors in pages.values()) > 1000, "the site has suspiciously few links"
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken[:50])


def test_no_page_has_an_id_twice(site: Path) -> None:
    twice = {
        str(page.relative_to(site)): found.duplicates
        for page in site.rglob("*.html")
        if (found := _read_anchors(page)).duplicates
    }
    assert not twice, twice


def test_search_ranks_the_spec_first(site: Path) -> None:
    """The scorer the site installs boosts every result of a spec page above an object's best score."""
    language_data = (site / "_static" / "language_data.js").read_text(encoding="utf-8")
    assert 'docname.startsWith("spec/")' in language_data


def test_screenshots_of_the_registers_a_diagram_a_flow_and_the_traceability_page(site: Path) -> None:
    shots = site / "_layout"
    shots.mkdir(exist_ok=True)
    for page, name in SCREENSHOTS:
        for width in (DESKTOP, PHONE):
            target = shots / f"{name}-{width}.png"
            screenshot(site, page, target, width=width, height=1600)
            assert target.stat().st_size > 10_000, f"{target} is (nearly) empty"
