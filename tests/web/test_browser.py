"""The page in a real headless Chromium (the system's), driven by Playwright for Python,
against a real ``convlens serve``. One browser and one page for the module: the tests
run in order, each starting from what the page shows."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

import convlens
from convlens.core.numbers import fmt
from convlens.web.limits import Limits
from convlens.web.mathtex import step_latex
from convlens.web.parse import parse_description
from tests.web.conftest import COLOUR_SET, EXAMPLES, REPO, cli, example, served, set_args
from tests.web.test_runs import make_runs

CHROMIUM = Path(os.environ.get("CONVLENS_CHROMIUM", "/usr/bin/chromium"))
# As the machine's notes prescribe: without the background-networking flags Chromium
# keeps trying to reach Google's hosts, which this closed network refuses.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tmp" / "artifacts"
SCREENSHOT = "web-workbench.png"
DOCS_SCREENSHOT = REPO / "docs" / "img" / SCREENSHOT
WAIT_MS = 15_000
HOSTILE = "<img src=x onerror=\"document.body.dataset.owned='yes'\">"


@dataclass
class Browser:
    page: Any
    url: str
    errors: list[str] = field(default_factory=list)

    def api(self, endpoint: str, **body: Any) -> Any:
        response = httpx2.post(self.url + "api/" + endpoint, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_runs(tmp_path_factory.mktemp("runs"))
    hostile = root / "<b>bold&amp;"
    hostile.mkdir()
    (hostile / "config.json").write_text(json.dumps({"note": HOSTILE}))
    return root


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, runs_root: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: the browser tests need Debian's chromium "
            "package ('make test' installs it: apt-get install -y chromium), or set "
            "CONVLENS_CHROMIUM to another Chromium"
        )
    from playwright.sync_api import sync_playwright

    with served("--runs", str(runs_root)) as url, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
            accept_downloads=True,
        )
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        state = Browser(page, url)
        page.on("pageerror", lambda error: state.errors.append(str(error)))
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        yield state
        context.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(locator)


def cell(page: Any, row: int, column: str) -> Any:
    """The number in a table cell (its first line; a closed form may follow)."""
    titles = page.locator("#report thead th").all_inner_texts()
    return page.locator(
        f"#report tbody tr:nth-child({row}) td:nth-child({titles.index(column) + 1}) > div"
    ).first


def load(page: Any, name: str) -> None:
    page.select_option("#library", label=name)


def test_the_page_starts_with_an_example_its_symbols_and_table(browser: Browser) -> None:
    page = browser.page
    report = convlens.analyze(example("colour_cnn.cnn"), **COLOUR_SET)
    expect(page.locator("#report tbody tr")).to_have_count(len(report.layers))
    for name, value in COLOUR_SET.items():
        expect(page.locator(f"#symbol-{name}")).to_have_value(str(value))
    expect(cell(page, 1, "params")).to_have_text(fmt(report.layers[0].params))
    expect(page.locator("#report tfoot th").nth(4)).to_contain_text(fmt(report.totals.params))
    # The closed form beneath the number, typeset: NF·k² + NF.
    closed = page.locator("#report tbody tr:nth-child(1) td:nth-child(5) .closed annotation")
    expect(closed).to_have_text("NF k^{2} + NF")


def test_typing_a_description_changes_the_table(browser: Browser) -> None:
    page = browser.page
    text = example("three_conv.cnn")
    page.fill("#description", text)
    report = convlens.analyze(text)
    expect(page.locator("#report tbody tr")).to_have_count(len(report.layers))
    expect(cell(page, 1, "params")).to_have_text("4,864")  # 64·(5·5·3) + 64
    expect(page.locator("#symbols-hint")).to_be_visible()  # no symbols left
    # Keystrokes, as a user types them: one more layer.
    page.locator("#description").press("End")
    page.keyboard.press("Control+End")
    page.keyboard.type("\nrelu")
    expect(page.locator("#report tbody tr")).to_have_count(len(report.layers) + 1)
    expect(cell(page, len(report.layers) + 1, "kind")).to_have_text("relu")


def test_an_error_is_shown_at_its_line_and_column(browser: Browser) -> None:
    page = browser.page
    page.fill("#description", "input 3x32x32\nconv2d 8 k=3\nconv2d 4 kk=3\nrelu\n")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_text(
        "line 3, column 10: unknown argument 'kk' for conv2d; conv2d takes: out_channels, "
        "kernel_size, stride, padding, dilation, groups, bias, derived_weight"
    )
    expect(page.locator("#editor-a .gutter .error-line")).to_have_text("3")
    expect(page.locator("#editor-a .backdrop .error-column")).to_have_text("k")
    expect(page.locator("#report")).to_have_class("stale")
    page.fill("#description", "input 3x32x32\nconv2d 8 k=3\nconv2d 4 k=3\nrelu\n")
    expect(error).to_be_hidden()
    expect(page.locator("#report tbody tr")).to_have_count(3)
    expect(page.locator("#report")).not_to_have_class("stale")


def test_moving_a_slider_updates_numbers_and_closed_forms(browser: Browser) -> None:
    page = browser.page
    load(page, "colour_cnn")
    expect(page.locator("#report tbody tr")).to_have_count(20)
    page.locator("#symbol-k-slider").fill("5")
    expect(page.locator("#symbol-k")).to_have_value("5")
    values = {**COLOUR_SET, "k": 5}
    report = convlens.analyze(example("colour_cnn.cnn"), **values)
    expect(cell(page, 1, "params")).to_have_text(fmt(report.layers[0].params))  # 32·25 + 32
    expect(cell(page, 1, "MACs")).to_have_text(fmt(report.layers[0].macs))
    closed = page.locator("#report tbody tr:nth-child(1) td:nth-child(6) .closed annotation")
    expect(closed).to_have_text("1024 NF k^{2}")
    page.fill("#symbol-NF", "8")  # the number field moves the slider too
    expect(page.locator("#symbol-NF-slider")).to_have_value("8")
    report = convlens.analyze(example("colour_cnn.cnn"), **{**values, "NF": 8})
    expect(page.locator("#report tfoot th").nth(4)).to_contain_text(fmt(report.totals.params))


def test_clicking_a_layer_shows_its_derivation_as_mathematics(browser: Browser) -> None:
    page = browser.page
    page.click("#report tbody tr:nth-child(5)")
    section = browser.api(
        "explain",
        description=example("colour_cnn.cnn"),
        set={"k": 5, "NF": 8, "NC": 24},
        layer=5,
    )
    expect(page.locator("#derivation-title")).to_have_text(section["title"])
    steps = page.locator("#derivation-steps li.step")
    expect(steps).to_have_count(len(section["steps"]))
    for i, step in enumerate(section["steps"]):
        expect(steps.nth(i).locator(".quantity")).to_have_text(step["quantity"])
        expect(steps.nth(i).locator(".math annotation")).to_have_text(step["latex"])
    assert page.locator("#derivation .katex-display").count() == len(section["steps"])
    assert page.locator("#derivation .katex-error").count() == 0
    notes = page.locator("#derivation-steps li.derivation-note")  # numbers without steps
    assert section["notes"]
    expect(notes).to_have_text(section["notes"])
    page.click("#report tfoot tr")  # the total row: training memory
    expect(page.locator("#derivation-title")).to_have_text("training memory (whole network)")


def test_every_step_of_every_example_and_zoo_model_typesets(browser: Browser) -> None:
    latex = set()
    for path in [*EXAMPLES.rglob("*.cnn"), *(REPO / "src/convlens/zoo/descriptions").glob("*.cnn")]:
        text = path.read_text()
        symbols = parse_description(text, {}, Limits()).symbols
        report = convlens.analyze(text, **{k: COLOUR_SET[k] for k in symbols})
        steps = [s for r in report.layers for s in r.steps] + list(report.memory_steps)
        latex.update(step_latex(s) for s in steps)
    failures = browser.page.evaluate(
        """(all) => all.flatMap((tex) => {
            try { katex.renderToString(tex, {throwOnError: true}); return []; }
            catch (error) { return [tex + ' → ' + error.message]; }
        })""",
        sorted(latex),
    )
    assert len(latex) > 300 and failures == []


def test_the_receptive_field_is_drawn_over_the_image(browser: Browser) -> None:
    page = browser.page
    page.select_option("#rf-layer", "9")  # conv2d_3, 16×8×8 after two poolings
    page.locator("#rf-y").fill("2")
    page.locator("#rf-x").fill("6")
    expect(page.locator("#rf-info")).to_contain_text("Output (2, 6) of layer 9 'conv2d_3'")
    field = browser.api(
        "receptive-field",
        description=example("colour_cnn.cnn"),
        set={"k": 5, "NF": 8, "NC": 24},
        layer=9,
        y=2,
        x=6,
    )
    (top, bottom), (left, right) = field["rows"], field["columns"]
    rect = page.locator("#rf-rect")
    expect(rect).to_have_attribute("x", str(left))
    expect(rect).to_have_attribute("y", str(top))
    expect(rect).to_have_attribute("width", str(right - left + 1))
    expect(rect).to_have_attribute("height", str(bottom - top + 1))
    record = convlens.analyze(example("colour_cnn.cnn"), k=5, NF=8, NC=24).layers[8]
    assert field["rf"] == list(record.rf) and right - left + 1 == record.rf[1]
    expect(page.locator("#rf-info")).to_contain_text(
        f"reads input rows {top} … {bottom} and columns {left} … {right} of 32×32. "
        f"Receptive field {record.rf[0]}, jump {record.jump[0]}, start {fmt(record.start[0])}."
    )
    # The image at the input's size (32×32, one channel), a field reaching into the padding.
    image = page.locator("#rf-image")
    expect(image).to_have_attribute("width", "32")
    assert image.get_attribute("href").startswith("data:image/png;base64,")
    grey = page.evaluate(
        """async () => {
            const img = new Image();
            img.src = document.getElementById('rf-image').getAttribute('href');
            await img.decode();
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, img.width, img.height).data;
            let colour = 0;
            for (let i = 0; i < d.length; i += 4) colour += Math.abs(d[i] - d[i + 2]);
            return [img.width, img.height, colour];
        }"""
    )
    assert grey == [32, 32, 0]
    view = page.locator("#rf-view").get_attribute("viewBox").split()
    assert float(view[0]) <= min(left, 0) and float(view[0]) + float(view[2]) >= max(right + 1, 32)


def test_compare_two_designs(browser: Browser) -> None:
    page = browser.page
    load(page, "separable_vs_standard/standard")
    expect(page.locator("#report tbody tr")).to_have_count(1)
    expect(cell(page, 1, "kind")).to_have_text("conv2d")
    page.click("#tab-button-compare")
    page.select_option("#library-b", label="separable_vs_standard/separable")
    a, b = (
        convlens.analyze(example(f"separable_vs_standard/{n}.cnn")).totals
        for n in ("standard", "separable")
    )
    macs = page.locator("#compare-metrics tr[data-metric=macs] td")
    expect(macs.nth(1)).to_have_text(fmt(a.macs))
    expect(macs.nth(2)).to_have_text(fmt(b.macs))
    expect(macs.nth(3)).to_have_text(f"{b.macs / a.macs:.3f}×")
    page.fill("#description-b", "input 3x8x8\nconv2d 4 k=9\n")
    expect(page.locator("#error-b")).to_contain_text("design B, line 2, column 1:")


def test_export_downloads_what_is_shown(browser: Browser) -> None:
    page = browser.page
    page.click("#tab-button-analyse")
    load(page, "colour_cnn")
    expect(page.locator("#report tbody tr")).to_have_count(20)
    page.select_option("#convention", "mac")
    page.fill("#batch", "4")
    expect(page.locator("#summary")).to_contain_text("× batch 4")
    values = {"k": 5, "NF": 8, "NC": 24}
    options = ["--convention", "mac", "--batch", "4", *set_args(values)]
    for fmt_name, suffix in (("json", "json"), ("csv", "csv"), ("latex", "tex")):
        with page.expect_download() as info:
            page.click(f"button.export[data-format={fmt_name}]")
        download = info.value
        assert download.suggested_filename == f"network.{suffix}"
        text = Path(download.path()).read_bytes()
        assert text == cli("analyze", example("colour_cnn.cnn"), "-f", fmt_name, *options)
    page.select_option("#convention", "full")
    page.fill("#batch", "1")


def test_a_description_file_can_be_opened_and_saved(browser: Browser, tmp_path: Path) -> None:
    page = browser.page
    source = EXAMPLES / "mobilenet_block.cnn"
    page.set_input_files("#upload", str(source))
    expect(page.locator("#description")).to_have_value(source.read_text())
    layers = len(convlens.analyze(source.read_text()).layers)
    expect(page.locator("#report tbody tr")).to_have_count(layers)
    with page.expect_download() as info:
        page.click("#download")
    assert Path(info.value.path()).read_text() == source.read_text()


def test_the_runs_view_shows_curves_and_images(browser: Browser) -> None:
    page = browser.page
    page.click("#tab-button-runs")
    buttons = page.locator("#runs-list button")
    expect(buttons).to_have_count(3)
    page.click("#runs-list button[data-run='colour_cnn-b100-s0']")
    expect(page.locator("#run-title")).to_have_text("colour_cnn-b100-s0")
    charts = page.locator("#run-charts svg.chart")
    expect(charts).to_have_count(3)  # train_loss, val_loss, val_accuracy against epoch
    points = page.locator("#run-charts svg[data-metric=val_accuracy] polyline")
    assert len(points.get_attribute("points").split()) == 3
    images = page.locator("#run-images img")
    expect(images).to_have_count(2)
    sizes = page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('#run-images img')].map(
            async (img) => {
                await img.decode();
                return [img.naturalWidth, img.naturalHeight];
            }))"""
    )
    assert sizes == [[30, 30], [40, 20]]
    expect(page.locator("#run-config")).to_contain_text('"colour_cnn"')


def test_user_strings_are_shown_as_text_never_as_html(browser: Browser) -> None:
    page = browser.page
    page.click("#runs-list button[data-run='<b>bold&amp;']")
    expect(page.locator("#run-title")).to_have_text("<b>bold&amp;")
    expect(page.locator("#run-config td")).to_have_text(json.dumps(HOSTILE))
    assert page.locator("#runs-list b, #run-config img, #run-title b").count() == 0
    page.click("#tab-button-analyse")
    token = "<img/src=x/onerror=document.body.dataset.owned=1>"  # one token: no spaces
    page.fill("#description", f"input 3x32x32\nconv2d 4 {token}\n")
    expect(page.locator("#error")).to_contain_text(f"cannot read '{token}'")
    assert page.locator("#error img, .backdrop img").count() == 0
    assert page.evaluate("document.body.dataset.owned") is None


def test_screenshot(browser: Browser) -> None:
    """The workbench as the README shows it: the colourization CNN, a layer's derivation
    and its receptive field. Saved under tmp/artifacts (not committed)."""
    from PIL import Image

    page = browser.page
    load(page, "colour_cnn")
    expect(page.locator("#report tbody tr")).to_have_count(20)
    for name, value in COLOUR_SET.items():
        page.fill(f"#symbol-{name}", str(value))
    params = fmt(convlens.analyze(example("colour_cnn.cnn"), **COLOUR_SET).totals.params)
    expect(page.locator("#report tfoot th").nth(4)).to_contain_text(params)
    page.click("#report tbody tr:nth-child(9)")
    expect(page.locator("#derivation-title")).to_contain_text("layer 9 'conv2d_3'")
    expect(page.locator("#rf-info")).to_contain_text("layer 9 'conv2d_3'")
    expect(page.locator("#status")).to_have_text("20 layers")  # nothing left in flight
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / SCREENSHOT
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        assert image.width == 1400 and image.height > 1000
        if os.environ.get("CONVLENS_UPDATE_SCREENSHOT"):
            small = image.convert("RGB").resize((1000, round(image.height * 1000 / 1400)))
            small.quantize(colors=128).save(DOCS_SCREENSHOT, optimize=True)


def test_no_script_error_happened(browser: Browser) -> None:
    assert browser.errors == []
