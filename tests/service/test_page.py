"""End to end: `vgloc serve` in a subprocess, the map page driven in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and
Selenium; skipped with the reason when any is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    # The server's start (torch import, model load) and the browser's take ~15 s on 2 cores.
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="headless browser test needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (dev extra)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(lund_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vgloc serve`` on a free loopback port; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vgloc.cli", "serve", "--index", str(lund_index), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vgloc serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vgloc serve did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver (both from Debian; nothing is downloaded)."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# What the page drew: the marker's position, where Leaflet projects it, where its icon is.
_PAGE_STATE = """
const s = window.vgloc, m = s.marker, ll = m.getLatLng(), p = s.map.latLngToContainerPoint(ll);
const icon = m.getElement().getBoundingClientRect(), box = s.map.getContainer().getBoundingClientRect();
const thumbs = Array.from(document.querySelectorAll('#matches img'));
return {
  lat: ll.lat, lon: ll.lng, dataLat: m.getElement().dataset.lat, dataLon: m.getElement().dataset.lon,
  x: p.x, y: p.y, width: box.width, height: box.height,
  iconTipX: icon.left + icon.width / 2 - box.left, iconTipY: icon.bottom - box.top,
  circle: s.circle ? s.circle.getRadius() : null, dots: s.matchMarkers.map(d => [d.getLatLng().lat, d.getLatLng().lng]),
  thumbs: thumbs.length, thumbsLoaded: thumbs.filter(i => i.complete && i.naturalWidth > 0).length,
  scale: document.querySelectorAll('.leaflet-control-scale-line').length,
  noTiles: s.map.getContainer().classList.contains('no-tiles'), tiles: document.querySelectorAll('.leaflet-tile').length,
};
"""


def test_uploading_a_lund_photo_puts_the_marker_where_locate_says(
    server: str, browser: Any, lund_dir: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = lund_dir / "07.jpg"
    expected = httpx.post(
        f"{server}/locate", files={"file": ("07.jpg", photo.read_bytes(), "image/jpeg")}
    ).json()
    browser.get(f"{server}/")
    assert browser.execute_script("return document.body.dataset.state") == "idle"
    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.body.dataset.state") in ("done", "error")
    )
    assert browser.execute_script("return document.body.dataset.state") == "done", browser.find_element(
        By.ID, "status"
    ).text
    # Thumbnails load asynchronously; give them a moment.
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script(_PAGE_STATE)["thumbsLoaded"] == len(expected["matches"])
    )
    state = browser.execute_script(_PAGE_STATE)
    assert (state["lat"], state["lon"]) == pytest.approx((expected["lat"], expected["lon"]), abs=1e-9)
    assert (float(state["dataLat"]), float(state["dataLon"])) == pytest.approx(
        (expected["lat"], expected["lon"])
    )
    # On screen: the projected point is inside the map, and the icon's tip sits on it.
    assert 0 < state["x"] < state["width"] and 0 < state["y"] < state["height"]
    assert state["iconTipX"] == pytest.approx(state["x"], abs=2)
    assert state["iconTipY"] == pytest.approx(state["y"], abs=2)
    assert state["circle"] == pytest.approx(expected["radius_m"])
    dots = [x for dot in state["dots"] for x in dot]
    assert dots == pytest.approx([x for m in expected["matches"] for x in (m["lat"], m["lon"])])
    assert state["thumbs"] == len(expected["matches"])
    # No tile server configured: a plain background, but the scale is there.
    assert state["noTiles"] and state["tiles"] == 0 and state["scale"] >= 1


def test_a_refused_upload_is_shown_on_the_page(server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a photo")
    browser.get(f"{server}/")
    browser.find_element(By.ID, "file").send_keys(str(not_an_image))
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.body.dataset.state") == "error"
    )
    assert "not a readable image" in browser.find_element(By.ID, "status").text
    assert browser.execute_script("return window.vgloc.error.code") == "not_an_image"


# Drop a file on the page as a user's drag would: a DataTransfer holding a File.
_DROP = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(r => r.blob()).then(blob => {
  const data = new DataTransfer();
  data.items.add(new File([blob], 'dropped.jpg', {type: 'image/jpeg'}));
  document.getElementById('map').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
  done(true);
}).catch(err => done(String(err)));
"""


def test_a_dropped_photo_is_located(server: str, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    # Database image 2's thumbnail: a JPEG the server serves, dropped back onto the page.
    thumb = httpx.get(f"{server}/matches/2/thumbnail").content
    expected = httpx.post(f"{server}/locate", content=thumb, headers={"content-type": "image/jpeg"}).json()
    browser.get(f"{server}/")
    browser.set_script_timeout(30)
    assert browser.execute_async_script(_DROP, f"{server}/matches/2/thumbnail") is True
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.body.dataset.state") == "done"
    )
    got = browser.execute_script("const ll = window.vgloc.marker.getLatLng(); return [ll.lat, ll.lng];")
    assert got == pytest.approx([expected["lat"], expected["lon"]], abs=1e-9)
