"""End to end: the app on a free port of 127.0.0.1, driven by Debian's chromium through Playwright (no browser
download: ``executable_path``). Each tab runs one short job; the page must show a playable audio element whose
WAV is non-silent and as long as asked, a picture of the right size, and one error line for a bad upload; every
request the page makes goes to 127.0.0.1. ``ARSOUND_DEMO_SCREENSHOTS=DIR`` also saves a screenshot of each tab."""
from __future__ import annotations

import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fakes import SR, music as music_clip

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the [demo] extra)")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable (as root: apt-get install chromium; "
                                                           "`make browser` does it)")]
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(saved_music, tmp_path_factory):
    from demo import app as demo_app

    out = tmp_path_factory.mktemp("demo-out")
    app = demo_app.build(out, [str(saved_music)])
    port = free_port()
    demo_app.launch(app, port, block=False)
    yield f"http://127.0.0.1:{port}", out
    app.close()


@pytest.fixture(scope="module")
def page(served):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        pg.set_default_timeout(TIMEOUT_MS)
        pg.requested = []
        pg.on("request", lambda r: pg.requested.append(r.url))
        pg.goto(served[0] + "/")
        yield pg
        browser.close()


def shot(pg, name: str) -> None:
    folder = os.environ.get("ARSOUND_DEMO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def fetch(pg, url: str) -> bytes:
    r = pg.request.get(url)
    assert r.ok, url
    return r.body()


def played_wav(pg, elem_id: str) -> tuple[np.ndarray, int]:
    """The WAV behind the <audio> element of the Gradio Audio ``elem_id``, once the browser has loaded its metadata
    (a playable element with a duration)."""
    pg.wait_for_function(f"() => {{ const a = document.querySelector('#{elem_id} audio'); "
                         "return a && a.src.startsWith('http') && a.readyState >= 1 && a.duration > 0; }")
    src = pg.locator(f"#{elem_id} audio").first.evaluate("a => a.src")
    x, sr = sf.read(io.BytesIO(fetch(pg, src)), dtype="float32")
    return x, sr


def open_tab(pg, name: str) -> None:
    pg.get_by_role("tab", name=name).click()


def upload(pg, elem_id: str, path: Path) -> None:
    pg.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def status_text(pg, elem_id: str, contains: str) -> str:
    pg.locator(f"#{elem_id}").get_by_text(contains).first.wait_for()
    return pg.locator(f"#{elem_id}").inner_text().strip()


def test_every_tab_in_a_browser(page, served, tmp_path):
    pg, (_, out_root) = page, served
    clip = tmp_path / "clip.wav"
    sf.write(clip, music_clip(0.5).numpy(), SR)

    # music: a short clip from the debug hierarchy, then a codes file that is not one (one error line)
    pg.locator("#music-seconds input").fill("0.5")
    pg.locator("#music-generate").click()
    x, sr = played_wav(pg, "music-clip-0")
    assert sr == SR and len(x) == SR // 2 and np.abs(x).max() > 1e-3
    assert "clip(s) of 0.50 s" in status_text(pg, "music-status", "clip(s)")
    shot(pg, "music")
    before = sorted(p.name for p in out_root.iterdir())
    bad = tmp_path / "bad.npz"
    bad.write_text("this is not a codes file\n")
    pg.get_by_text("Continue this audio, or a codes file").click()
    upload(pg, "music-codes", bad)
    pg.locator("#music-generate").click()
    line = status_text(pg, "music-status", "Error")
    assert "not an arsound codes file" in line and "\n" not in line
    assert sorted(p.name for p in out_root.iterdir()) == before          # nothing (half-)written

    # vocoder: an uploaded 0.5 s clip through the first shipped vocoder (wavenet-speech-en, post-filter 32 by
    # default) and Griffin-Lim
    open_tab(pg, "Vocoder")
    upload(pg, "voc-input", clip)
    pg.locator("#voc-go").click()
    for elem in ("voc-wavenet", "voc-griffin"):
        x, sr = played_wav(pg, elem)
        assert sr == SR and len(x) == (SR // 2) // 256 * 256 and np.abs(x).max() > 1e-3
    line = status_text(pg, "voc-status", "LSD")
    assert "both with 32 post-filter passes" in line                    # the box left empty: the model's choice
    shot(pg, "vocoder")

    # tokenizer: the same clip from every level of vqvae-chorales
    open_tab(pg, "Tokenizer")
    upload(pg, "tok-input", clip)
    pg.locator("#tok-go").click()
    for lv in range(3):
        x, sr = played_wav(pg, f"tok-level-{lv}")
        assert sr == SR and len(x) == SR // 2 and np.abs(x).max() > 1e-3
    assert "kbit/s" in status_text(pg, "tok-status", "kbit/s")
    shot(pg, "tokenizer")

    # images: a grid of 4 samples is 2 x 2 digits of 28 px, 1 px apart, shown 4x
    from PIL import Image

    open_tab(pg, "Images")
    pg.locator("#img-count input[type=number]").fill("4")
    pg.locator("#img-count input[type=number]").press("Enter")
    pg.locator("#img-sample").click()
    img = pg.locator("#img-grid img")
    img.first.wait_for()
    size = Image.open(io.BytesIO(fetch(pg, img.first.get_attribute("src")))).size
    assert size == (4 * (2 * 29 + 1),) * 2
    shot(pg, "images")

    hosts = {u.split("/")[2] for u in pg.requested if u.startswith("http")}
    assert hosts == {served[0].split("/")[2]}, hosts
