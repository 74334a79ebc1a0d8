"""The dashboard page (``page.html`` beside this module): one HTML document with its CSS,
script and SVG charts inline.

No CDN, no framework: the machine it runs on may have no internet, and a trading desk's page
should not load code from elsewhere. Every value from the server is put into the page with
``textContent`` (never as HTML), so an operation id or an error message cannot inject markup.
"""

from __future__ import annotations

from importlib.resources import files

PAGE = files("orderguard.dashboard").joinpath("page.html").read_text(encoding="utf-8")

__all__ = ["PAGE"]
