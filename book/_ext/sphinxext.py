"""A Sphinx extension for the book's build (listed in ``_config.yml``): one script tag per inline script.

Sphinx 7.4 registers an inline script that an extension adds after the builder has started twice (once
with ``filename=None``, once with ``''``), so every page declared sphinx-thebe's ``const THEBE_JS_URL``
twice and the browser threw ``Identifier 'THEBE_JS_URL' has already been declared`` on every page.
jupyter-book 1 pins ``sphinx~=7.0``, so the fix lives here: drop the repeats before the page is written.
"""

from __future__ import annotations


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    files = context.get("script_files")
    if not files:
        return
    seen, unique = set(), []
    for js in files:
        key = (js.filename or "", js.priority, tuple(sorted((k, str(v)) for k, v in js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    files[:] = unique


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
