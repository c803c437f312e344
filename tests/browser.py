"""A real headless Chromium (Debian's `chromium`) driven by Playwright, with a fake microphone that
plays a WAV file: the browser side of the end-to-end tests. Screenshots go to `ARTIFACTS`."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ARTIFACTS = Path(os.environ.get("VOXLINE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def chromium(fake_microphone: Path | None = None) -> Iterator[Browser]:
    """Headless Chromium; `fake_microphone` (16-bit PCM WAV) plays once as the microphone from the
    moment a page starts capturing (no permission prompt)."""
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",  # CI runs as root
    ]
    if fake_microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_microphone}%noloop")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
