"""Open a report in headless Chromium (Debian's, driven by playwright) and say what the browser saw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # scripts/install-system-deps.sh installs it; never `playwright install`
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]

CHART_STATS = """() => [...document.querySelectorAll('figure.chart')].map(f => {
  const svg = f.querySelector('svg');
  const marks = svg ? [...svg.querySelectorAll('[id^="data-"] path, [id^="data-"] use')] : [];
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.id, marks: marks.length, drawn: marks.filter(m => m.tagName === 'use' ||
          (m.getAttribute('d') || '').length > 10).length, width: box.width, height: box.height};
})"""


@dataclass
class Seen:
    console_errors: list[str]
    page_errors: list[str]
    requests: list[str]  # every URL the page asked for (the file itself first)
    charts: list[dict]
    summary_rows: int
    screenshot: Path


def open_report(html: Path, screenshot: Path) -> Seen:
    from playwright.sync_api import sync_playwright

    url = html.resolve().as_uri()
    console, errors, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def route(r):  # record every request; only the page itself may load
                requests.append(r.request.url)
                r.continue_() if r.request.url == url else r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            charts = page.evaluate(CHART_STATS)
            rows = page.evaluate("() => document.querySelectorAll('#summary tbody tr').length")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Seen(console, errors, requests, charts, rows, screenshot)
