"""Drop repeated <script> entries from each page.

With Sphinx 7.4, an inline script that an extension adds once the builder exists (sphinx-thebe
and sphinx-togglebutton, both loaded by Jupyter Book 1.x, do) is kept twice: once with filename
None and once with filename "", which Sphinx does not see as equal. A repeated
``const THEBE_JS_URL = ...`` is a JavaScript SyntaxError on every page; the browser check
(scripts/check_book_in_browser.py) catches it.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(script.filename or ""), script.attributes.get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
