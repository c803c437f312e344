"""The browser side, served by the server itself: the web client SDK (`/sdk/…`, one ES module and
its AudioWorklet, no build step), the talk-to-your-agent page (`/app/`), the call console
(`/console/`) and the example page for Retell's web client 1.x (`/examples/retell-client-v1/`).

Static files only: the pages call the REST API with the API key the operator signs in with (kept in
the tab's sessionStorage, never in a URL)."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parents[2] / "web"
MOUNTS = {
    "/sdk": WEB / "sdk",
    "/app": WEB / "app",
    "/console": WEB / "console",
    "/examples/retell-client-v1": WEB / "examples" / "retell-client-v1",
}


def mount_web(app: FastAPI) -> None:
    for path, directory in MOUNTS.items():
        app.mount(path, StaticFiles(directory=directory, html=True, check_dir=False), name=path.strip("/"))

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/app/")
