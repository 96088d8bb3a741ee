r"""The built book works in a real browser: math typeset, widgets live without a kernel, no JS errors.

This test builds the book into a temporary folder, serves its `_build/html` on 127.0.0.1 and drives
headless Debian Chromium (`/usr/bin/chromium`) through Playwright. It visits every HTML page of the book
and checks that

* no page raises a JavaScript exception or logs a console error;
* MathJax finished (`MathJax.startup.promise`), every `.math` node holds an `mjx-container`, MathJax
  reports no TeX error, and no raw `$$`, `\[` or `\(` is left in the text outside code;
* every internal link (`a[href]` on the same host) resolves to a file, and its `#fragment`, if any, to
  an element with that id on the target page;
* on `book/vae/vae-mnist.html` the latent-size explorer (`.gm-widget.gm-latent-size`), rendered from
  the stored widget state by `@jupyter-widgets/html-manager`, shows another image after the test moves
  its slider; screenshots before and after go to `_build/browser-artifacts/`.

The browser has no network. Every request to another host goes through `page.route`: the CDN files the
pages load (MathJax with its fonts, RequireJS, the widget manager) are served from the npm packages that
`make browser-deps` installs into `.venv/js`; any other external request fails the test. The list of
external URLs the pages asked for is printed and written next to the screenshots.

Set GENMODELS_BOOK_ROOT to test another copy of the book, GENMODELS_NODE_MODULES to use other npm
packages, GENMODELS_CHROMIUM to use another Chromium. The test is skipped only where `/usr/bin/chromium` does not exist, or where the set-up
(`tools/browser-deps.sh`) recorded in `.venv/js/setup-problem.txt` why it could not install the npm
packages; the skip reason then quotes that file. Packages missing without a recorded reason fail the test.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import mimetypes
import os
import re
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = [pytest.mark.book, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK_ROOT = Path(os.environ.get("GENMODELS_BOOK_ROOT", REPO_ROOT)).resolve()
NODE_MODULES = Path(os.environ.get("GENMODELS_NODE_MODULES", REPO_ROOT / ".venv" / "js" / "node_modules"))
# Written by tools/browser-deps.sh when it could not install something; one problem a line.
SETUP_PROBLEM = NODE_MODULES.parent / "setup-problem.txt"


def _setup_problem() -> str:
    return SETUP_PROBLEM.read_text(encoding="utf-8").strip().replace("\n", "; ") if SETUP_PROBLEM.is_file() else ""


CHROMIUM = Path(os.environ.get("GENMODELS_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"{CHROMIUM} does not exist: "
        + (_setup_problem() or "install Debian's chromium (`make browser-deps` as root)"),
        allow_module_level=True,
    )
ARTIFACTS = BOOK_ROOT / "_build" / "browser-artifacts"
WIDGET_PAGE = "book/vae/vae-mnist.html"
WIDGET = ".gm-widget.gm-latent-size"

PAGE_TIMEOUT_MS = 8_000  # load one page, or wait for MathJax or a widget on it
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# The npm packages behind the CDN URLs in the built pages: `https://<host>/<prefix><path>` is served from
# NODE_MODULES/<package>/<path>. The version in a jsDelivr URL (`mathjax@3`, `html-manager@1.0.6`) must
# match the installed package's (`3` matches any 3.x.y).
JSDELIVR = re.compile(r"^/npm/(?P<package>(?:@[^/@]+/)?[^/@]+)@(?P<version>[^/]+)/(?P<path>.+)$")
FIXED = {  # URL without query -> file under NODE_MODULES
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js": "requirejs/require.js",
}
# npm's requirejs has no require.min.js, so the unminified build of the same version 2.3.4 stands in for
# cdnjs's. Its hash is not the one in the page's `integrity` attribute: for a file served locally whose
# hash differs, the test removes the attribute from the page (and says so); a matching one is kept.

MAKE_HINT = "run `make browser-deps` (part of `make test`) to install them"


# --------------------------------------------------------------------------------------------- helpers
def _package_version(package: str) -> str | None:
    meta = NODE_MODULES / package / "package.json"
    return json.loads(meta.read_text(encoding="utf-8"))["version"] if meta.is_file() else None


def _local_file(url: str) -> Path | None:
    """The file under NODE_MODULES that stands in for an external URL, or None if there is none."""
    parts = urlsplit(url)
    bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if bare in FIXED:
        path = NODE_MODULES / FIXED[bare]
        return path if path.is_file() else None
    match = JSDELIVR.match(parts.path) if parts.netloc == "cdn.jsdelivr.net" else None
    if not match:
        return None
    installed = _package_version(match["package"])
    wanted = match["version"]
    if installed is None or not (installed == wanted or installed.startswith(wanted + ".")):
        return None
    relative = Path(unquote(match["path"]))
    path = NODE_MODULES / match["package"] / relative
    return path if ".." not in relative.parts and path.is_file() else None


@functools.lru_cache(maxsize=None)
def _digest(path: Path, algorithm: str) -> str:
    return base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode()


SCRIPT_TAG = re.compile(r"<script\b[^>]*>")
ATTR = re.compile(r'\s(integrity|src)="([^"]*)"')


def _strip_mismatched_integrity(html: str, stripped: set[str]) -> str:
    """Drop `integrity` from script tags whose locally served file has another hash (see FIXED)."""

    def fix(match: re.Match) -> str:
        tag = match.group(0)
        attrs = dict(ATTR.findall(tag))
        if "integrity" not in attrs or "src" not in attrs:
            return tag
        local = _local_file(attrs["src"])
        if local is None:
            return tag  # not served locally: the request fails the test anyway
        algorithm, _, expected = attrs["integrity"].partition("-")
        if _digest(local, algorithm) == expected:
            return tag
        stripped.add(attrs["src"])
        return tag.replace(f' integrity="{attrs["integrity"]}"', "")

    return SCRIPT_TAG.sub(fix, html)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the signature of the base class)
        pass


# --------------------------------------------------------------------------------------------- fixtures
def _require_dependencies() -> None:
    """Fail (not skip) where Chromium is there but Playwright or the npm packages are not."""
    missing = [p for p in ("mathjax", "requirejs", "@jupyter-widgets/html-manager") if _package_version(p) is None]
    if missing and _setup_problem():
        pytest.skip(f"npm packages {missing} are missing: {_setup_problem()}")
    if missing:
        pytest.fail(f"npm packages {missing} are missing from {NODE_MODULES}: {MAKE_HINT}", pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: `make install` (requirements.txt)", pytrace=False)


@pytest.fixture(scope="module")
def html_dir(build_book) -> Path:
    """A fresh build of the book (the same command as `make book`, shared with tests/test_book.py), so
    that no stale page is visited."""
    _require_dependencies()
    return build_book(BOOK_ROOT)


@pytest.fixture(scope="module")
def base_url(html_dir: Path):
    """`_build/html` served on 127.0.0.1 (a free port) from a daemon thread, shut down after the tests."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Offline:
    """The route handler: local pages pass, known CDN files come from NODE_MODULES, the rest is refused."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {}  # external URL -> local file, in the order first requested
        self.refused: dict[str, str] = {}  # external URL -> the page that asked for it
        self.stripped: set[str] = set()  # script URLs whose `integrity` attribute was removed
        self.page = ""

    def __call__(self, route, request) -> None:
        url = request.url
        host = urlsplit(url).hostname
        if host in LOCAL_HOSTS:
            if request.resource_type == "document" and urlsplit(url).path.endswith(".html"):
                response = route.fetch()
                html = _strip_mismatched_integrity(response.text(), self.stripped)
                route.fulfill(response=response, body=html)
            else:
                route.continue_()
            return
        local = _local_file(url)
        if local is None:
            match = JSDELIVR.match(urlsplit(url).path)
            installed = _package_version(match["package"]) if match else None
            note = f"; {NODE_MODULES.name} has {match['package']}@{installed}" if installed else ""
            self.refused.setdefault(url, self.page + note)
            route.abort("blockedbyclient")
            return
        self.served.setdefault(url, str(local.relative_to(NODE_MODULES)))
        content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        if local.suffix in {".js", ".mjs"}:
            content_type = "application/javascript"
        # The pages load these with crossorigin="anonymous" (and MathJax's fonts are cross-origin).
        route.fulfill(path=local, headers={"Content-Type": content_type, "Access-Control-Allow-Origin": "*"})


@pytest.fixture(scope="module")
def browser_page(base_url):
    """One headless Chromium page with the offline route handler and error collectors attached."""
    from playwright.sync_api import sync_playwright  # checked by _require_dependencies

    offline = _Offline()
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        context.route("**/*", offline)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(f"{offline.page}: uncaught {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"{offline.page}: console.error {msg.text} ({msg.location.get('url', '')})")
                if msg.type == "error"
                else None
            ),
        )
        try:
            yield page, offline, errors
        finally:
            context.close()
            browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = [f"served from {NODE_MODULES.name}: {url} -> {path}" for url, path in offline.served.items()]
    report += [f"integrity attribute removed (local file differs): {url}" for url in sorted(offline.stripped)]
    report += [f"refused: {url} (asked for by {page})" for url, page in offline.refused.items()]
    (ARTIFACTS / "external-requests.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\nexternal requests made by the pages:\n  " + "\n  ".join(report))


def _goto(page, offline: _Offline, base_url: str, relpath: str) -> None:
    offline.page = relpath
    response = page.goto(base_url + relpath, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    assert response is not None and response.ok, f"{relpath}: HTTP {response and response.status}"


# Text of the page outside code, scripts and typeset math: what a reader sees as prose.
PROSE_JS = """() => {
  const root = (document.querySelector('main') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
      .forEach(e => e.remove());
  return root.textContent;
}"""
MATHJAX_JS = """async (ms) => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return 'no MathJax';
  const timeout = new Promise(resolve => setTimeout(() => resolve('timeout'), ms));
  return await Promise.race([MathJax.startup.promise.then(() => 'done'), timeout]);
}"""
MATH_JS = """() => ({
  math: document.querySelectorAll('.math').length,
  untypeset: Array.from(document.querySelectorAll('.math'))
      .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
  containers: document.querySelectorAll('mjx-container').length,
  texErrors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(e => e.getAttribute('data-mjx-error') || e.textContent),
})"""
LINKS_JS = """() => ({
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.getAttribute('name')),
  hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
})"""
RAW_MATH = ("$$", "\\[", "\\(")


def _book_pages(html_dir: Path) -> list[str]:
    return sorted(
        p.relative_to(html_dir).as_posix()
        for p in html_dir.rglob("*.html")
        if p.relative_to(html_dir).parts[0] not in {"_static", "_sources"}
    )


# --------------------------------------------------------------------------------------------- tests
def test_every_page_typesets_math_without_errors_and_links_resolve(html_dir, base_url, browser_page):
    page, offline, errors = browser_page
    pages = _book_pages(html_dir)
    assert WIDGET_PAGE in pages, f"no {WIDGET_PAGE} in the build"
    ids: dict[str, set[str]] = {}
    hrefs: dict[str, list[str]] = {}
    problems: list[str] = []
    pages_with_math = 0
    for relpath in pages:
        if relpath == "index.html":  # a <meta http-equiv="refresh"> to the root page: check it moves on
            offline.page = relpath
            page.goto(base_url + relpath, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_url(re.compile(r".*/book/.+\.html$"), timeout=PAGE_TIMEOUT_MS)
            continue
        _goto(page, offline, base_url, relpath)
        if page.locator(".math").count():
            pages_with_math += 1
            state = page.evaluate(MATHJAX_JS, PAGE_TIMEOUT_MS)
            if state != "done":
                problems.append(f"{relpath}: MathJax did not finish ({state})")
            math = page.evaluate(MATH_JS)
            if math["untypeset"] or not math["containers"]:
                problems.append(
                    f"{relpath}: {len(math['untypeset'])} of {math['math']} math nodes not "
                    f"typeset, e.g. {math['untypeset'][:3]}"
                )
            if math["texErrors"]:
                problems.append(f"{relpath}: MathJax TeX errors {math['texErrors'][:5]}")
        prose = page.evaluate(PROSE_JS)
        for raw in RAW_MATH:
            if raw in prose:
                at = prose.index(raw)
                problems.append(f"{relpath}: raw {raw} in the text: ...{prose[max(0, at - 60) : at + 60]!r}...")
        found = page.evaluate(LINKS_JS)
        ids[relpath] = set(found["ids"])
        hrefs[relpath] = found["hrefs"]
    assert pages_with_math >= 5, f"only {pages_with_math} pages with .math nodes: is math rendered at all?"

    host = urlsplit(base_url).netloc
    checked = 0
    for relpath, links in hrefs.items():
        for href in links:
            parts = urlsplit(href)
            if parts.netloc != host:
                continue
            checked += 1
            target = unquote(parts.path).lstrip("/") or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (html_dir / target).is_file():
                problems.append(f"{relpath}: link {href} -> no file {target}")
            elif parts.fragment and target in ids and unquote(parts.fragment) not in ids[target]:
                problems.append(f"{relpath}: link {href} -> no element #{unquote(parts.fragment)} on {target}")

    assert checked > len(pages), f"only {checked} internal links on {len(pages)} pages: is the navigation there?"
    report = []
    if offline.refused:
        report += [
            "external requests that cannot be served locally (add the npm package to the Makefile's "
            "NPM_PACKAGES, or fix its version there):"
        ]
        report += [f"  {url} (from {where})" for url, where in offline.refused.items()]
    if errors:
        report += ["JavaScript errors:", *(f"  {e}" for e in errors)]
    if problems:
        report += ["math and links:", *(f"  {p}" for p in problems)]
    assert not report, f"{len(pages)} pages and {checked} internal links checked\n" + "\n".join(report)


VISIBLE_SRCS_JS = """(selector) => Array.from(document.querySelectorAll(selector + ' img'))
    .filter(img => img.offsetParent !== null && img.getBoundingClientRect().width > 0)
    .map(img => img.getAttribute('src'))"""


def test_latent_size_slider_changes_the_image_without_a_kernel(base_url, browser_page):
    page, offline, errors = browser_page
    errors.clear()
    _goto(page, offline, base_url, WIDGET_PAGE)
    state = page.locator('script[type="application/vnd.jupyter.widget-state+json"]')
    assert state.count() and "gm-latent-size" in state.first.text_content(), (
        f"{WIDGET_PAGE} stores no widget with the DOM class gm-latent-size: the chapter's notebook must be "
        "executed (make notebooks) so that the latent-size explorer's state is saved in its metadata"
    )
    widget = page.locator(WIDGET)
    try:
        widget.locator(".noUi-handle").first.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
        widget.locator("img").first.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:  # playwright's TimeoutError
        pytest.fail(
            f"{WIDGET_PAGE}: no rendered latent-size explorer ({WIDGET} with a .noUi-handle and an "
            f"img) after {PAGE_TIMEOUT_MS} ms; {widget.count()} {WIDGET} elements; "
            f"JavaScript errors: {errors}\n{exc}",
            pytrace=False,
        )
    assert widget.count() == 1, f"{widget.count()} latent-size explorers on {WIDGET_PAGE}"
    widget.scroll_into_view_if_needed()
    before = page.evaluate(VISIBLE_SRCS_JS, WIDGET)
    # The explorer shows one frame at a time: samples and reconstructions, two pictures.
    assert len(before) == 2, (
        f"expected the two visible pictures of one frame before moving the slider, got {len(before)}"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "vae-mnist-latent-size-before.png"))
    label_before = widget.locator(".widget-readout").first.text_content()

    handle = widget.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("End")  # noUiSlider's keyboard support: the last option
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    after = before
    while after == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        after = page.evaluate(VISIBLE_SRCS_JS, WIDGET)
    page.wait_for_timeout(300)  # let the image paint before the screenshot
    widget.screenshot(path=str(ARTIFACTS / "vae-mnist-latent-size-after.png"))
    label_after = widget.locator(".widget-readout").first.text_content()

    assert label_after != label_before, f"the slider's readout stayed at {label_before!r} after End"
    assert len(after) == 2, f"expected the two visible pictures of one frame after moving the slider, got {len(after)}"
    assert after[0] != before[0] and after[1] != before[1], (
        "the visible pictures did not change when the slider moved (is the jslink there?)"
    )
    assert not errors, "JavaScript errors on the widget page:\n" + "\n".join(errors)
