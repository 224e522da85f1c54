"""Headless Chromium through playwright, for pages a test looks at as a person would; each
page screenshotted into tests/screenshots/ for a person to look at."""
import os
from pathlib import Path

from .services import require

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(profile_dir):
    """A persistent Chromium context in ``profile_dir`` (a generator: closed after its yield);
    skipped, or failed under SPYGLASS_REQUIRE_SERVICES=1, where Chromium or playwright is
    missing."""
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed: pip install playwright")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 900})
        yield context
        context.close()
