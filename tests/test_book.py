"""The book builds without a single warning, and the HTML it produces is complete and linked up.

This is `make book` run into a temporary folder, followed by checks on what it wrote: a page per
entry of `_toc.yml`, the bibliography, math left for MathJax, and no relative link to a missing page
or a missing anchor. It takes a few seconds while the notebooks are stored with their outputs (the
build never executes them: `execute_notebooks: "off"` in `_config.yml`).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.book

yaml = pytest.importorskip("yaml")
pytest.importorskip("jupyter_book", reason="the book tools are not installed (requirements.txt)")

REPO_ROOT = Path(__file__).resolve().parents[1]
# A title from book/references.bib: present only if the {bibliography} directive rendered.
BIBLIOGRAPHY_PROBE = "Auto-Encoding Variational Bayes"


def _toc_documents(toc: dict) -> list[str]:
    """Every document named in a jb-book `_toc.yml` (the root first), without its suffix."""
    docs = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                docs.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return [str(Path(doc).with_suffix("")) if Path(doc).suffix in {".md", ".ipynb"} else doc for doc in docs]


class _PageParser(HTMLParser):
    """Collects a page's hrefs, its anchor targets (id/name) and its text outside <script>/<style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: set[str] = set()
        self.text: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self._skip_depth += 1
        if attrs.get("href") is not None and tag != "link":
            self.hrefs.append(attrs["href"])
        for key in ("id", "name"):
            if attrs.get(key):
                self.anchors.add(attrs[key])

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data):
        if not self._skip_depth:
            self.text.append(data)


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_book_builds_without_warnings_and_links_resolve(build_book) -> None:
    html_dir = build_book(REPO_ROOT)  # fails with the build's output if the build fails or warns

    # One page per entry of the table of contents.
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    documents = _toc_documents(toc)
    missing = [doc for doc in documents if not (html_dir / f"{doc}.html").is_file()]
    assert not missing, f"toc entries without an HTML page: {missing}"
    assert f"{toc['root']}.html" in (html_dir / "index.html").read_text(encoding="utf-8"), (
        "index.html does not lead to the root page"
    )

    pages = {path.resolve(): _parse(path) for path in sorted(html_dir.rglob("*.html"))}
    toc_pages = [html_dir / f"{doc}.html" for doc in documents]

    # The bibliography rendered (on exactly one page, so that there are no duplicate citations).
    with_bibliography = [p for p in toc_pages if BIBLIOGRAPHY_PROBE in "".join(pages[p].text)]
    assert len(with_bibliography) == 1, f"bibliography found on {with_bibliography}"

    # Math is handed to MathJax: math nodes present, MathJax loaded, no literal `$$` left in the text.
    all_html = {p: p.read_text(encoding="utf-8") for p in toc_pages}
    assert any('class="math' in text for text in all_html.values()), "no math rendered anywhere"
    for page in toc_pages:
        if 'class="math' in all_html[page]:
            assert "mathjax" in all_html[page].lower(), f"{page.name}: math but no MathJax script"
        assert "$$" not in "".join(pages[page].text), f"{page.relative_to(html_dir)}: literal $$ in the text"

    # Every relative link to a local .html page (and its #anchor, if any) resolves.
    broken = []
    for page, parsed in pages.items():
        for href in parsed.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith("/"):
                continue  # external, protocol-relative or site-absolute
            if not parts.path:  # "#anchor" on the same page
                if parts.fragment and unquote(parts.fragment) not in parsed.anchors:
                    broken.append(f"{page.relative_to(html_dir)}: {href}")
                continue
            if not parts.path.endswith(".html"):
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if not target.is_file():
                broken.append(f"{page.relative_to(html_dir)}: {href} (no such page)")
            elif parts.fragment and unquote(parts.fragment) not in pages[target].anchors:
                broken.append(f"{page.relative_to(html_dir)}: {href} (no such anchor)")
    assert not broken, "broken relative links:\n" + "\n".join(broken)
