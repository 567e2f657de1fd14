"""The HTML leaderboard site: built from records, escaped, and checked in a real (headless) Chromium.

The browser test loads the site from ``file://``, reads the rendered DOM
(tables present, a header click sorts, every link resolves to a file that
exists, no console errors) and saves a screenshot. It skips, saying why,
when Chromium, chromedriver or selenium is missing (``.ci/run`` installs the
Debian packages when it can).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from grainbench.examples import example_pair
from grainbench.figures import error_overlay, save_png
from grainbench.leaderboard import build_leaderboards
from grainbench.protocol import get_protocol
from grainbench.records import make_record, write_record
from grainbench.scoring import score

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>"


def _record(out: Path, model="unet", seed=0, mode=None, shift=1, model_args=None, figure: Path | None = None):
    p, gt = example_pair((96, 96), 20, seed=seed)
    p = np.roll(p, shift - 1, axis=1)
    result = score(p, gt, "wpunet-2019")
    cfg = {"model": model, "dataset": "pure_iron", "split": "test", "protocol": "wpunet-2019@1", "preset": "quick",
           "seed": seed, "mode": mode, "model_args": model_args or {}}
    figures = None
    if figure is not None:
        save_png(error_overlay(gt.astype(float), p > 0.5, gt), figure)
        figures = {"overlay": str(figure)}
    rec = make_record(config=cfg, protocol=get_protocol("wpunet-2019").to_dict(), aggregate=result.aggregate,
                      per_slice=result.per_slice.to_dict(orient="records"), figures=figures)
    return write_record(rec, out / "records" / "pure_iron")


@pytest.fixture
def site(tmp_path):
    out = tmp_path / "leaderboards"
    fig = out / "figures" / "pure_iron"
    _record(out, "unet", shift=1, figure=fig / "unet-quick-overlay.png")
    _record(out, "hed", shift=3)
    _record(out, "classical", shift=5, model_args={"note": HOSTILE})
    _record(out, "wpunet", shift=2, mode="chain")
    _record(out, "wpunet", shift=1, mode="oracle")
    build_leaderboards(out / "records", out)
    return out


def test_the_site_is_written_beside_the_markdown_and_escapes_names(site):
    page = (site / "pure_iron.html").read_text()
    assert (site / "index.html").is_file() and (site / "pure_iron.md").is_file()
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned" in page
    # fair, upper-bound and reported tables apart
    assert page.count('data-kind="fair"') == 1 and page.count('data-kind="oracle"') == 1
    assert 'data-kind="reported"' in page
    # no external resources: nothing loaded from the network
    assert "http://" not in page.split("<body>")[0] and "https://" not in page.split("<body>")[0]
    assert "<script src" not in page
    # every record has its page with the JSON pretty-printed and escaped
    pages = sorted((site / "pages/records/pure_iron").glob("*.html"))
    assert len(pages) == 5
    hostile = [p.read_text() for p in pages if "classical" in p.name][0]
    assert "<script>window" not in hostile and "&lt;script&gt;window.__pwned" in hostile


def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no headless browser: install the Debian packages chromium and chromium-driver "
                    "(.ci/run does when apt-get is there)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1200", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(driver))
    except Exception as exc:  # a broken install: say so, do not fail the suite
        pytest.skip(f"headless Chromium did not start ({type(exc).__name__}: {str(exc).splitlines()[0]})")


def _column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _check_links(driver, page: Path) -> int:
    from selenium.webdriver.common.by import By

    n = 0
    for el in driver.find_elements(By.CSS_SELECTOR, "a[href], img[src]"):
        url = el.get_attribute("href") or el.get_attribute("src")
        parsed = urlparse(url)
        assert parsed.scheme == "file", f"{page.name}: {url} is not a local file"
        assert Path(unquote(parsed.path)).is_file(), f"{page.name}: link {url} does not resolve"
        n += 1
    return n


def _errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


@pytest.mark.slow
def test_the_site_in_headless_chromium(site, tmp_path):
    from selenium.webdriver.common.by import By

    driver = _browser()
    try:
        driver.get((site / "index.html").as_uri())
        assert "pure_iron" in driver.find_element(By.TAG_NAME, "body").text
        assert _check_links(driver, site / "index.html") >= 2
        driver.find_element(By.LINK_TEXT, "pure_iron").click()
        assert driver.title == "Leaderboard: pure_iron"
        assert driver.execute_script("return window.__pwned === undefined")  # the hostile name stayed text
        tables = {t.get_attribute("data-kind"): t for t in driver.find_elements(By.CSS_SELECTOR, "table.sortable")}
        assert {"fair", "oracle", "reported"} <= set(tables)
        fair = tables["fair"]
        headers = [th.text for th in fair.find_elements(By.CSS_SELECTOR, "thead th")]
        assert headers[:4] == ["#", "method", "mode", "seeds"] and "figures" in headers
        methods = _column(fair, 1)
        assert len(methods) == 4 and any(HOSTILE in m for m in methods)
        vi = headers.index("vi")
        ranked = [float(v) for v in _column(fair, vi)]
        assert ranked == sorted(ranked)  # built best first
        th = fair.find_elements(By.CSS_SELECTOR, "thead th")[vi]
        th.click()  # ascending (already), then
        th.click()  # descending
        assert th.get_attribute("aria-sort") == "descending"
        assert [float(v) for v in _column(fair, vi)] == sorted(ranked, reverse=True)
        name = fair.find_elements(By.CSS_SELECTOR, "thead th")[1]
        name.click()
        assert _column(fair, 1) == sorted(methods, key=str.lower)
        assert _check_links(driver, site / "pure_iron.html") >= 9  # nav, 5 records, figure cell, overlay, split-merge
        shot = tmp_path / "pure_iron.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        shutil.copy(shot, Path(os.environ.get("GRAINBENCH_SCREENSHOT", "/tmp/grainbench-shot.png")))
        # a record page: its JSON link and figure resolve
        driver.find_element(By.CSS_SELECTOR, "table[data-kind=fair] tbody tr td a").click()
        assert driver.title.startswith("record ")
        assert "Full record" in driver.find_element(By.TAG_NAME, "body").text
        _check_links(driver, site / "record")
        assert not _errors(driver), _errors(driver)
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_markdown_of_the_committed_records_is_what_is_committed(tmp_path):
    """One renderer for both formats: rebuilding leaderboards/ from its records gives the committed Markdown."""
    repo = Path(__file__).resolve().parent.parent / "leaderboards"
    out = tmp_path / "leaderboards"
    shutil.copytree(repo / "records", out / "records")
    written = build_leaderboards(out / "records", out, with_figures=False)
    assert written
    for dataset in written:
        for name in (f"{dataset}.md", f"{dataset}_tracking.md"):
            if not (out / name).exists():
                continue
            ours = [line for line in (out / name).read_text().splitlines() if not line.startswith("![")]
            committed = [line for line in (repo / name).read_text().splitlines() if not line.startswith("![")]
            assert [line for line in ours if line] == [line for line in committed if line], name
        assert (out / f"{dataset}.html").is_file()
