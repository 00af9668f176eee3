"""Measure a built site in headless Chromium: which tables and code blocks overflow their column, and how
large the text of each diagram renders.

Each page is copied beside itself with a small script added; a probe page loads all the copies in
iframes of the widths asked for (an iframe is a viewport of its own, so the theme's media queries see
that width), and each copy posts its measurements to the probe page, which writes them into its DOM for
``chromium --dump-dom`` to print.  One browser run measures every page at every width.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_MEASURE = """
<script>
window.addEventListener("load", () => {
  const article = document.querySelector("article[role=main]") || document.querySelector("article");
  const column = article.getBoundingClientRect();
  const scrollerOf = (element) => {
    for (let node = element; node && node !== article; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === "auto" || overflow === "scroll") return node;
    }
    return null;
  };
  const elements = [];
  for (const element of article.querySelectorAll("table, pre")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0) continue;
    const scroller = scrollerOf(element);
    const width = element.tagName === "PRE" ? element.scrollWidth : box.width;
    const labelled = element.closest("[id]");
    elements.push({
      tag: element.tagName.toLowerCase(),
      where: (labelled && labelled.id) || "",
      text: element.textContent.trim().slice(0, 40),
      width: Math.round(width),
      right: Math.round(box.right),
      scroller_width: scroller ? Math.round(scroller.clientWidth) : null,
      scroller_right: scroller ? Math.round(scroller.getBoundingClientRect().right) : null,
    });
  }
  const diagrams = [];
  for (const image of article.querySelectorAll("img.graphviz, object.graphviz")) {
    const box = image.getBoundingClientRect();
    const style = getComputedStyle(image);
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const border = parseFloat(style.borderLeftWidth) + parseFloat(style.borderRightWidth);
    diagrams.push({src: image.getAttribute("src") || image.getAttribute("data"),
                   width: box.width - padding - border});
  }
  parent.postMessage({key: window.name, viewport: innerWidth, column: Math.round(column.width),
                      column_right: Math.round(column.right), elements: elements, diagrams: diagrams}, "*");
});
</script>
"""

_PROBE = """<!DOCTYPE html>
<html><body><pre id="results"></pre>
<script>
const expected = {expected};
const results = {{}};
window.addEventListener("message", (event) => {{
  results[event.data.key] = event.data;
  if (Object.keys(results).length === expected) {{
    document.getElementById("results").setAttribute("data-layout", JSON.stringify(results));
  }}
}});
</script>
{frames}
</body></html>
"""

_RESULTS = re.compile(r'data-layout="(?P<json>[^"]*)"')


@dataclass(frozen=True)
class Block:
    """A table or code block as laid out at one width."""

    page: str
    viewport: int
    tag: str
    where: str
    text: str
    width: int
    column: int
    scrollable: bool

    @property
    def overflows(self) -> bool:
        """Wider than the content column: part of it is out of sight."""
        return self.width > self.column + 1

    @property
    def clipped(self) -> bool:
        """Out of sight with nothing that scrolls it into view within the column."""
        return self.overflows and not self.scrollable


@dataclass(frozen=True)
class Diagram:
    """A diagram (an SVG picture) as laid out at one width."""

    page: str
    viewport: int
    source: str
    """The SVG's path within the site."""
    width: float
    """CSS pixels of the picture's content box."""
    smallest_font: float
    """CSS pixels of the smallest text of the diagram at that width."""


@dataclass(frozen=True)
class Layout:
    """What one browser run measured: the blocks and the diagrams of every page at every width."""

    blocks: list[Block]
    diagrams: list[Diagram]


_SVG_SIZE = re.compile(r'<svg\b[^>]*\bviewBox="[\d.+-]+ [\d.+-]+ (?P<width>[\d.]+) [\d.]+"')
_FONT_SIZE = re.compile(r'font-size="(?P<size>[\d.]+)"')


def smallest_font(svg: Path, rendered_width: float) -> float:
    """CSS pixels of the smallest text of ``svg`` drawn ``rendered_width`` CSS pixels wide."""
    text = svg.read_text(encoding="utf-8")
    size = _SVG_SIZE.search(text)
    if size is None:
        raise ValueError(f"{svg} has no viewBox: its scale is unknown")
    fonts = [float(match["size"]) for match in _FONT_SIZE.finditer(text)]
    if not fonts:
        return float("inf")  # no text at all
    return min(fonts) * rendered_width / float(size["width"])


def chromium() -> str | None:
    """The Chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_command(binary: str, *arguments: str) -> list[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *arguments]


def _probe_copy(site: Path, page: str) -> str:
    """Copy ``page`` beside itself with the measuring script; return the copy's path within the site."""
    source = site / page
    copy = source.with_name(source.stem + ".layout-probe.html")
    copy.write_text(source.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    return str(copy.relative_to(site))


def measure(site: Path, pages: list[str], widths: list[int], *, timeout: float = 120) -> list[Block]:
    """Every table and code block of ``pages`` (paths within ``site``) at each of ``widths`` CSS pixels."""
    return measure_layout(site, pages, widths, timeout=timeout).blocks


def measure_layout(site: Path, pages: list[str], widths: list[int], *, timeout: float = 120) -> Layout:
    """Every table, code block and diagram of ``pages`` (paths within ``site``) at each of ``widths`` px."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    copies = {page: _probe_copy(site, page) for page in pages}
    frames = "\n".join(
        f'<iframe name="{width} {page}" src="{copy}" style="width:{width}px;height:800px"></iframe>'
        for page, copy in copies.items()
        for width in widths
    )
    probe = site / "layout-probe.html"
    probe.write_text(_PROBE.format(expected=len(copies) * len(widths), frames=frames), encoding="utf-8")
    try:
        dom = subprocess.run(
            _chromium_command(binary, "--virtual-time-budget=30000", "--dump-dom", probe.as_uri()),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    finally:
        probe.unlink()
        for copy in copies.values():
            (site / copy).unlink()
    found = _RESULTS.search(dom)
    if found is None:
        raise RuntimeError(f"not every page reported its layout; the probe page was:\n{dom[:2000]}")
    results = json.loads(html.unescape(found["json"]))
    return Layout(_blocks(results), _diagrams(site, results))


def _diagrams(site: Path, results: dict[str, dict[str, object]]) -> list[Diagram]:
    diagrams = []
    for key, result in results.items():
        width, page = key.split(" ", 1)
        found = result.get("diagrams", [])
        assert isinstance(found, list)
        for diagram in found:
            source = (site / page).parent / diagram["src"]
            diagrams.append(
                Diagram(
                    page=page,
                    viewport=int(width),
                    source=str(source.resolve().relative_to(site.resolve())),
                    width=float(diagram["width"]),
                    smallest_font=smallest_font(source, float(diagram["width"])),
                )
            )
    return diagrams


def _blocks(results: dict[str, dict[str, object]]) -> list[Block]:
    blocks = []
    for key, result in results.items():
        width, page = key.split(" ", 1)
        column = int(str(result["column"]))
        column_right = int(str(result["column_right"]))
        elements = result["elements"]
        assert isinstance(elements, list)
        for element in elements:
            scroller_right = element["scroller_right"]
            # A scrolling wrapper helps only if the wrapper itself stays within the column.
            scrollable = scroller_right is not None and scroller_right <= column_right + 1
            blocks.append(
                Block(
                    page=page,
                    viewport=int(width),
                    tag=element["tag"],
                    where=element["where"],
                    text=element["text"],
                    width=element["width"],
                    column=column,
                    scrollable=scrollable,
                )
            )
    return blocks


_FROM_ELEMENT = """
<script>
for (let node = document.getElementById(FRAGMENT); node && node.tagName !== "ARTICLE"; node = node.parentElement) {
  while (node.previousElementSibling) node.previousElementSibling.remove();
}
</script>
"""


def screenshot(site: Path, page: str, target: Path, *, width: int, height: int, timeout: float = 60) -> None:
    """A PNG of ``page`` (a path within ``site``, with an optional ``#fragment``) at ``width`` x ``height``.

    Headless Chromium takes the picture from the top, fragment or not, so the copy it is shown leaves out
    everything of the article before the fragment's element.
    """
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    path, _, fragment = page.partition("#")
    source = site / path
    shown = source.with_name(source.stem + ".layout-shot.html")
    scroll = _FROM_ELEMENT.replace("FRAGMENT", json.dumps(fragment))
    shown.write_text(
        source.read_text(encoding="utf-8").replace("</body>", (scroll if fragment else "") + "</body>"),
        encoding="utf-8",
    )
    try:
        subprocess.run(
            _chromium_command(
                binary,
                f"--window-size={width},{height}",
                "--virtual-time-budget=5000",
                f"--screenshot={target}",
                shown.as_uri(),
            ),
            capture_output=True,
            timeout=timeout,
            check=True,
        )
    finally:
        shown.unlink()
