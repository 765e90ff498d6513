"""The web page: plain static files (HTML, CSS, JS, vendored Chart.js) that the API serves at /ui/.

The page calls the /v1 API relative to itself (`../v1/...`) and does no arithmetic of its own.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"


def mount(app, path: str = "/ui") -> None:
    """Serve the page from `app` (a FastAPI/Starlette app) at `path`/ (index.html at the root)."""
    from fastapi.staticfiles import StaticFiles

    app.mount(path, StaticFiles(directory=STATIC_DIR, html=True), name="ui")
