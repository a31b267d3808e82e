"""The header's repository and launch buttons appear exactly when _config.yml sets `repository.url`.

The course has no public repository yet, so `repository.url` is empty. Jupyter Book 1 refuses
`html.use_repository_button: true` without a URL, and sphinx-book-theme fails on every notebook
page when `launch_buttons` is configured without one. With this extension the launch buttons can
stay configured in _config.yml, and setting `repository.url` is the one step a fork takes (README,
"Publish your own copy") to get the repository button and the Binder, Colab and JupyterHub buttons.
"""

from __future__ import annotations


def _repository_buttons(app, config) -> None:
    options = config.html_theme_options
    if options.get("repository_url"):
        options["use_repository_button"] = True  # Jupyter Book's default config sets it to false
    else:
        options["launch_buttons"] = {}


def setup(app):
    app.connect("config-inited", _repository_buttons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
