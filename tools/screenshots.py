"""Screenshots of the collector's pages for the README: ``python tools/screenshots.py``.

Starts ``spyglass serve`` on a temporary database, runs ``spyglass demo --no-wait`` against it
twice, as two releases of the demo app, then opens each page of ``PAGES`` in headless
Chromium (Debian's, through playwright) and writes it to ``docs/images/<name>.png``.

A page is added by adding a row to ``PAGES``. Its path may name what the demo's data has:
``{service}`` (the demo app's service), ``{trace_id}`` (its slowest request),
``{error_id}`` (its most recent error group), ``{route}`` and ``{method}`` (its slowest route),
``{n_plus_one}`` and ``{outbound}`` (a trace of those routes: folded calls; two services).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
RELEASES = ("1.0.0", "1.1.0")

#: (file name without .png, path, CSS selector to wait for before the shot, full page?)
PAGES = (
    ("services", "/?since=15m", "table.data", False),
    ("service", "/services/{service}?since=15m", ".service-charts .uplot canvas", True),
    ("service-route", "/services/{service}?since=15m&route={route}&method={method}", ".service-charts .uplot canvas",
     False),
    ("traces", "/traces?since=15m&service={service}", "table", False),
    ("trace", "/traces/{n_plus_one}", ".waterfall", False),
    ("distributed-trace", "/traces/{outbound}", ".waterfall", False),
    ("slowest-trace", "/traces/{trace_id}", ".waterfall", False),
    ("slow-calls", "/slow-calls?since=15m", "table", False),
    ("errors", "/errors?since=15m", "table", False),
    ("error", "/errors/{error_id}", "main", False),
    ("metrics", "/metrics?since=15m", ".charts .uplot canvas", True),
    ("logs", "/logs?since=15m", "main", False),
)
VIEWPORT = {"width": 1400, "height": 900}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "images"), help="where the PNG files go")
    parser.add_argument("--only", nargs="*", help="only these pages (names from PAGES)")
    parser.add_argument("--url", help="shoot this running collector's data instead of running the demo")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spyglass-shots-") as tmp:
        collector = None
        url = args.url
        if url is None:
            collector, url = start_collector(Path(tmp) / "shots.db")
        try:
            if args.url is None:
                for release in RELEASES:
                    run_demo(url, release, Path(tmp))
            shoot(url, out, [page for page in PAGES if not args.only or page[0] in args.only])
        finally:
            if collector is not None:
                collector.terminate()
                collector.wait(timeout=30)
    return 0


def start_collector(db):
    process = subprocess.Popen([sys.executable, "-m", "spyglass.cli", "serve", "--port", "0", "--db", str(db)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the collector did not start: {line}")
    return process, line.split("listening on ", 1)[1].split()[0]


def run_demo(url, release, tmp):
    print(f"demo, release {release} …", flush=True)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "EXAMPLE_DATABASE": str(tmp / f"example-{release}.sqlite3")}
    subprocess.run([sys.executable, "-m", "spyglass.cli", "demo", "--no-wait", "--collector", url,
                    "--release", release], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def _api(url, path, **params):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/api{path}?{urlencode({'since': '1h', **params})}", timeout=30) as reply:
        return json.load(reply)


def placeholders(url):
    """What the paths of ``PAGES`` may name, from the collector's data."""
    services = _api(url, "/services")["services"]
    service = max(services, key=lambda s: s["requests"])["service"] if services else ""
    routes = _api(url, "/routes", service=service)["routes"]
    traces = sorted(_api(url, "/traces", service=service, limit=1000)["traces"], key=lambda t: -t["duration_ms"])
    groups = _api(url, "/errors")["groups"]
    return {"service": quote(service, safe=""), "route": quote(routes[0]["route"] or "", safe="") if routes else "",
            "method": (routes[0]["method"] or "") if routes else "",
            "trace_id": traces[0]["trace_id"] if traces else "0" * 32,
            "error_id": groups[0]["id"] if groups else 0,
            **{name: _trace_of(url, service, route) for name, route in
               (("n_plus_one", "/n-plus-one"), ("outbound", "/outbound"))}}


def _trace_of(url, service, route):
    traces = _api(url, "/traces", service=service, route=route, limit=1)["traces"]
    return traces[0]["trace_id"] if traces else "0" * 32


def shoot(url, out, pages):
    from playwright.sync_api import sync_playwright

    values = placeholders(url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=VIEWPORT)
        for name, path, ready, full_page in pages:
            target = url + path.format(**values)
            page.goto(target)
            page.wait_for_selector(ready, timeout=15_000)
            # Charts below the fold are drawn when scrolled into view.
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            time.sleep(1.0)  # the charts' last fetches
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
            print(f"{out / name}.png  ←  {path.format(**values)}", flush=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
