"""The HTTP API through an ASGI test client, against the command line it mirrors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import convlens
from convlens.core.numbers import fmt
from convlens.render.columns import COLUMNS, layer_cells, total_cells
from convlens.web.app import create_app
from convlens.web.limits import Limits
from tests.web.conftest import (
    COLOUR_SET,
    EXAMPLES,
    REPO,
    cli,
    cli_process,
    example,
    set_args,
)

ZOO = sorted((REPO / "src/convlens/zoo/descriptions").glob("*.cnn"))

# (example, API fields beside the description, the same as CLI options)
CASES = [
    ("colour_cnn.cnn", {"set": COLOUR_SET}, set_args(COLOUR_SET)),
    (
        "colour_cnn.cnn",
        {"set": {"k": 5, "NF": 8, "NC": 4}, "convention": "mac", "batch": 3},
        [*set_args({"k": 5, "NF": 8, "NC": 4}), "--convention", "mac", "--batch", "3"],
    ),
    ("colour_cnn.cnn", {}, []),  # every size a closed form
    (
        "three_conv.cnn",
        {"dtype": "float16", "optimizer": "sgd", "convention": "2mac", "input": "3x64x48"},
        ["--dtype", "float16", "--optimizer", "sgd", "--convention", "2mac", "-i", "3x64x48"],
    ),
    ("resnet_block.cnn", {"frozen": ["conv2d_*"]}, ["--frozen", "conv2d_*"]),
    ("unet.cnn", {"batch": 2}, ["--batch", "2"]),
]


@pytest.mark.parametrize(("name", "fields", "options"), CASES)
def test_analyze_is_the_cli_json_byte_for_byte(
    client: TestClient, name: str, fields: dict, options: list[str]
) -> None:
    text = example(name)
    response = client.post("/api/analyze", json={"description": text, **fields})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    expected = cli_process("analyze", text, "-f", "json", *options)
    assert expected.returncode == 0, expected.stderr
    assert response.content == expected.stdout


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_zoo_description_analyses_as_on_the_cli(client: TestClient, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 200, response.text
    assert response.content == cli("analyze", text, "-f", "json")


def _cli_error(text: str, *options: str) -> str:
    result = cli_process("analyze", text, "-f", "json", *options)
    assert result.returncode == 2
    return " ".join(result.stderr.decode().split()).removeprefix("error: ")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("input 3x32x32\nconv2d 8 k=3\nconv2d 4 kk=3\nrelu\n", 3, 10),
        ("input 3x32x32\nconv2d 8 k=3\nconv2d 4 k=40\n", 3, 1),
        ("input 3x32x32\n  conv2d 8 k=(3\n", 2, 14),
        ("input 3x32x32\nconv2d 8 k=3\nadd skip\n", 3, 5),
        ("input 3x32x32\nconvv2d 8\n", 2, 1),
    ],
)
def test_a_bad_description_is_a_422_at_its_line_and_column(
    client: TestClient, text: str, line: int, column: int
) -> None:
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 422
    body = response.json()
    assert (body["line"], body["column"]) == (line, column)
    # The same message the CLI prints after "<text>:LINE:COLUMN: ".
    assert _cli_error(text) == f"<text>:{line}:{column}: {body['error']}"


def test_errors_without_a_position_have_null_line_and_column(client: TestClient) -> None:
    text = example("three_conv.cnn")
    for fields, words in (
        ({"set": {"nope": 3}}, "symbol(s) the description does not use: nope"),
        ({"convention": "flops"}, "convention must be one of full, 2mac, mac"),
        ({"dtype": "int8"}, "dtype must be one of float32"),
        ({"input": "3x0x5"}, "--input must be three positive sizes"),
    ):
        response = client.post("/api/analyze", json={"description": text, **fields})
        assert response.status_code == 422, fields
        body = response.json()
        assert words in body["error"]
        assert body["line"] is None and body["column"] is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "malformed JSON at line 1, column 2"),
        (b"[1, 2]", "must be a JSON object, got a list"),
        (b"\xff\xfe", "must be UTF-8 JSON"),
        (b"{}", "'description' is required"),
        (b'{"description": 3}', "'description' must be a string, got a number"),
        (b'{"description": "input 3x8x8", "sett": {}}', "unknown field 'sett'"),
        (b'{"description": "input 3x8x8", "set": {"k": 2.5}}', "the value of k must be an integer"),
        (
            b'{"description": "input 3x8x8", "set": {"k": true}}',
            "the value of k must be an integer",
        ),
        (b'{"description": "input 3x8x8", "set": {"1k": 2}}', '"1k" is not a symbol name'),
        (b'{"description": "input 3x8x8", "batch": 0}', "'batch' must be a positive integer"),
        (b'{"description": "input 3x8x8", "frozen": "x"}', "'frozen' must be a list"),
    ],
)
def test_malformed_requests_are_400_with_a_clear_message(
    client: TestClient, body: bytes, words: str
) -> None:
    response = client.post(
        "/api/analyze", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_a_body_over_the_size_limit_is_413(client: TestClient) -> None:
    text = "input 3x8x8\n" + "# padding\n" * (Limits().max_body_bytes // 10)
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 413
    assert "larger than 256 KiB" in response.json()["error"]

    def chunks():  # no Content-Length: the cap counts what arrives
        yield b'{"description": "'
        for _ in range(300):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/api/analyze", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("input 3x32x32\nrepeat 1000000000: relu\n", 2, "more than 5,000 layers"),
        ("input 3x32x32\nrepeat 1000000000: freeze\n", 2, "more than 200,000 statements"),
        (
            "input 3x32x32\nblock b():\n  relu\n  relu\nrepeat 10**9:\n  b\n",
            3,
            "more than 5,000 layers",
        ),
    ],
)
def test_a_repeat_bomb_is_refused_at_its_line_and_the_server_keeps_serving(
    client: TestClient, text: str, line: int, words: str
) -> None:
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 422
    body = response.json()
    assert words in body["error"] and "the workbench's limit" in body["error"]
    assert body["line"] == line
    assert client.post("/api/analyze", json={"description": "input 3x8x8\nrelu"}).status_code == 200


# A description that SymPy needs minutes for: 120 layers whose sizes are nested floors of
# seven symbols. With every symbol given a number it takes milliseconds.
SLOW = "input 3xHxW\nrepeat 60:\n  conv2d NF k=k s=s p=p\n  maxpool2d m s=t\n"
SLOW_VALUES = {"H": 64, "W": 64, "NF": 4, "k": 1, "s": 1, "p": 0, "m": 1, "t": 1}


def test_an_analysis_past_the_time_limit_is_stopped_and_the_server_keeps_serving() -> None:
    with TestClient(create_app(Limits(timeout_s=0.5, workers=1))) as client:
        response = client.post("/api/analyze", json={"description": SLOW})
        assert response.status_code == 422
        assert "took longer than 0.5 s" in response.json()["error"]
        # The worker was replaced: the next request is answered.
        fast = client.post("/api/analyze", json={"description": SLOW, "set": SLOW_VALUES})
        assert fast.status_code == 200
        assert len(fast.json()["layers"]) == 120
        # The page's table: numbers at once, the closed forms given up after half the limit.
        page = client.post("/api/workbench", json={"description": SLOW, "set": SLOW_VALUES})
        assert page.status_code == 200
        assert page.json()["closed_forms"] == "unavailable: they took longer than 0.25 s"
        assert len(page.json()["rows"]) == 120


def test_no_endpoint_imports_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``module:factory`` is the CLI's: on the server it is only (bad) description text."""
    marker = tmp_path / "imported"
    (tmp_path / "probe_module.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n"
        "def factory():\n    raise SystemExit\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # the worker processes inherit sys.path
    with TestClient(create_app(Limits(workers=1))) as client:
        for description in ("probe_module:factory", "zoo:resnet18", "probe_module:factory\n"):
            for endpoint in ("analyze", "workbench", "explain", "export"):
                response = client.post(f"/api/{endpoint}", json={"description": description})
                assert response.status_code == 422, (endpoint, description)
    assert not marker.exists()


def test_workbench_rows_are_the_terminal_cells_with_closed_forms(client: TestClient) -> None:
    text = example("colour_cnn.cnn")
    values = {"k": 5, "NF": 8, "NC": 6}
    response = client.post("/api/workbench", json={"description": text, "set": values})
    assert response.status_code == 200
    view = response.json()
    report = convlens.analyze(text, **values)
    assert [c["title"] for c in view["columns"]] == [c.value for c in COLUMNS]
    assert [r["cells"] for r in view["rows"]] == [
        [layer_cells(r)[c] for c in COLUMNS] for r in report.layers
    ]
    assert view["totals"]["cells"] == [total_cells(report)[c] for c in COLUMNS]
    assert view["symbols"] == ["NC", "NF", "k"] and view["closed_forms"] == "ok"
    params = [c.value for c in COLUMNS].index("params")
    # conv2d_1: 1 input channel, NF filters of k×k, a bias each.
    assert view["rows"][0]["cells"][params] == fmt(8 * 5 * 5 + 8)
    assert view["rows"][0]["closed"][params] == "NF k^{2} + NF"
    assert view["rows"][0]["closed"][0] is None  # the index has no closed form
    rf = [c.value for c in COLUMNS].index("RF")
    assert view["rows"][0]["closed"][rf] == "k"
    # After upsampling the symbolic RF is unavailable: the number stands alone.
    assert view["totals"]["cells"][rf] == "60" and view["totals"]["closed"][rf] is None
    summary = {s["label"]: s for s in view["summary"]}
    assert summary["MACs"]["value"] == fmt(report.totals.macs)
    assert summary["MACs"]["closed"] == fmt(convlens.analyze(text).totals.macs)


def test_workbench_asks_for_values_before_analysing(client: TestClient) -> None:
    text = example("colour_cnn.cnn")
    view = client.post("/api/workbench", json={"description": text, "set": {"k": 3}}).json()
    assert view == {"symbols": ["NC", "NF", "k"], "unbound": ["NC", "NF"], "rows": None}
    # A symbol that stops the parse (a repeat count) still gets asked for.
    text = "input 3x8x8\nrepeat n: relu\n"
    view = client.post("/api/workbench", json={"description": text}).json()
    assert view == {"symbols": ["n"], "unbound": ["n"], "rows": None}
    view = client.post("/api/workbench", json={"description": text, "set": {"n": 4}}).json()
    assert len(view["rows"]) == 4 and view["closed_forms"].startswith("unavailable: ")


def test_explain_steps_are_the_cli_derivation(client: TestClient) -> None:
    text = example("colour_cnn.cnn")
    for layer in (1, 2, 14, 15):
        response = client.post(
            "/api/explain", json={"description": text, "set": COLOUR_SET, "layer": layer}
        )
        assert response.status_code == 200
        section = response.json()
        printed = cli("explain", text, "--layer", str(layer), *set_args(COLOUR_SET)).decode()
        lines = printed.strip().splitlines()
        assert lines[0] == section["title"]
        notes = [f"  {note}" for note in section["notes"]]
        assert [line for line in lines[1:] if line not in notes] == [
            f"  {s['quantity']}: {s['text']}" + (f"   ({s['note']})" if s["note"] else "")
            for s in section["steps"]
        ]
        assert [line for line in lines[1:] if line in notes] == notes
        assert any("for the backward pass" in note for note in notes)
        assert all(s["latex"] for s in section["steps"])
    memory = client.post("/api/explain", json={"description": text, "set": COLOUR_SET}).json()
    assert memory["title"] == "training memory (whole network)"
    report = convlens.analyze(text, **COLOUR_SET)
    assert memory["steps"][-1]["text"].endswith(f"= {report.totals.training_bytes}")
    missing = client.post(
        "/api/explain", json={"description": text, "layer": 99, "set": COLOUR_SET}
    )
    assert missing.status_code == 422 and "layers are numbered 1 to 20" in missing.json()["error"]


def test_receptive_field_of_a_position_follows_start_and_jump(client: TestClient) -> None:
    """On a layer whose outputs all see the same span, output o reads
    start − (RF − 1)/2 + o·jump … start + (RF − 1)/2 + o·jump."""
    text = example("three_conv.cnn")
    report = convlens.analyze(text)
    for index in (1, 3, 5):
        record = report.layers[index - 1]
        for y, x in ((0, 0), (3, 7), (record.output_shape[1] - 1, 0)):
            field = client.post(
                "/api/receptive-field",
                json={"description": text, "layer": index, "y": y, "x": x},
            ).json()
            assert field["rf"] == list(record.rf) and field["jump"] == list(record.jump)
            for axis, o, span in ((0, y, field["rows"]), (1, x, field["columns"])):
                half = (record.rf[axis] - 1) / 2
                centre = record.start[axis] + o * record.jump[axis]
                assert span == [centre - half, centre + half]
    # After global pooling: the whole input.
    pooled = "input 3x32x24\nconv2d 4 k=3\nglobal_avgpool\n"
    field = client.post("/api/receptive-field", json={"description": pooled, "layer": 2}).json()
    assert field["status"] == "whole input"
    assert (field["rows"], field["columns"]) == ([0, 31], [0, 23])


def test_receptive_field_refuses_what_it_cannot_draw(client: TestClient) -> None:
    text = example("three_conv.cnn")
    for fields, words in (
        ({"layer": 1, "y": 64, "x": 0}, "'y' must be below the output size 64, got 64"),
        ({"layer": 8, "y": 0, "x": 0}, "has no spatial output"),
        ({"layer": "nope"}, "no layer 'nope'"),
        ({}, "'layer' is required"),
    ):
        response = client.post("/api/receptive-field", json={"description": text, **fields})
        assert response.status_code == 422, fields
        assert words in response.json()["error"]
    response = client.post(
        "/api/receptive-field", json={"description": example("colour_cnn.cnn"), "layer": 1}
    )
    assert response.status_code == 422
    assert "drawn for numbers: give values to NC, NF, k" in response.json()["error"]


def test_compare_gives_ratios_of_the_totals(client: TestClient) -> None:
    a, b = (
        example("separable_vs_standard/standard.cnn"),
        example("separable_vs_standard/separable.cnn"),
    )
    response = client.post("/api/compare", json={"description": a, "description_b": b})
    assert response.status_code == 200
    view = response.json()
    left, right = convlens.analyze(a).totals, convlens.analyze(b).totals
    rows = {m["metric"]: m for m in view["metrics"]}
    assert rows["params"]["a"] == fmt(left.params) and rows["params"]["b"] == fmt(right.params)
    assert rows["macs"]["ratio"] == f"{right.macs / left.macs:.3f}×"
    assert len(view["layers"]) == max(
        len(convlens.analyze(a).layers), len(convlens.analyze(b).layers)
    )
    # The comparison's JSON export is `convlens compare A B -f json`, byte for byte.
    exported = client.post(
        "/api/export", json={"description": a, "description_b": b, "format": "json"}
    )
    assert exported.content == cli("compare", a, b, "-f", "json")
    bad = client.post(
        "/api/compare", json={"description": a, "description_b": "input 3x8x8\nrelu x"}
    )
    assert bad.status_code == 422
    assert bad.json()["design"] == "b" and bad.json()["line"] == 2


@pytest.mark.parametrize("fmt_name", ["json", "markdown", "latex", "csv"])
def test_export_is_the_cli_renderer(client: TestClient, fmt_name: str) -> None:
    text = example("colour_cnn.cnn")
    response = client.post(
        "/api/export",
        json={"description": text, "set": COLOUR_SET, "format": fmt_name, "batch": 2},
    )
    assert response.status_code == 200
    suffix = {"json": "json", "markdown": "md", "latex": "tex", "csv": "csv"}[fmt_name]
    assert response.headers["content-disposition"] == f'attachment; filename="network.{suffix}"'
    expected = cli("analyze", text, "-f", fmt_name, "--batch", "2", *set_args(COLOUR_SET))
    assert response.content == expected


def test_library_lists_examples_and_zoo_descriptions(client: TestClient) -> None:
    items = client.get("/api/library").json()["descriptions"]
    by_name = {d["name"]: d for d in items}
    assert by_name["three_conv"]["text"] == example("three_conv.cnn")
    assert by_name["three_conv"]["title"] == "three 5x5 stride-2 convolutions and a classifier"
    assert by_name["separable_vs_standard/separable"]["group"] == "examples"
    assert {f"zoo:{p.stem}" for p in ZOO} <= set(by_name)
    assert len(list(EXAMPLES.rglob("*.cnn"))) + len(ZOO) == len(items)


def test_the_page_and_its_files_are_served_without_any_outside_address(
    client: TestClient,
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    static = REPO / "src/convlens/web/static"
    for name in ("index.html", "app.js", "style.css"):
        text = (static / name).read_text()
        assert set(re.findall(r"https?://[^\s\"')]+", text)) <= {"http://www.w3.org/2000/svg"}
        assert client.get(f"/static/{name}").status_code == 200
    css = (static / "katex/katex.min.css").read_text()
    fonts = {part.split(")")[0] for part in css.split("url(")[1:] if ".woff2" in part}
    assert fonts and all((static / "katex" / font).is_file() for font in fonts)
    assert client.get("/static/katex/katex.min.js").status_code == 200
    assert client.get("/static/sample.jpg").headers["content-type"] == "image/jpeg"


def test_api_index_documents_the_endpoints(client: TestClient) -> None:
    index = client.get("/api").json()
    assert "POST /api/analyze" in index["endpoints"]
    assert index["limits"]["max_layers"] == 5000
    doc = (REPO / "docs/web.md").read_text()
    for endpoint in index["endpoints"]:
        assert f"`{endpoint}`" in doc, endpoint


def test_another_host_header_is_refused_when_hosts_are_given() -> None:
    app = create_app(Limits(workers=1), allowed_hosts=["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api").status_code == 200
        assert client.get("/api", headers={"host": "evil.example"}).status_code == 400


def test_the_answers_pasted_in_docs_web_are_real(client: TestClient) -> None:
    doc = (REPO / "docs/web.md").read_text()
    for endpoint, body in (
        ("analyze", {"description": "input 3x32x32\nconv2d 16 kk=3\n"}),
        ("analyze", {"description": "input 3x32x32\nrepeat 1000000000: relu\n"}),
        ("analyze", {"description": 3}),
        (
            "receptive-field",
            {
                "description": "input 3x32x32\nconv2d 16 k=3 s=2 p=1\nconv2d 16 k=3 p=1\n",
                "layer": 2,
                "y": 4,
                "x": 0,
            },
        ),
    ):
        response = client.post(f"/api/{endpoint}", json=body)
        assert f"-d '{json.dumps(body)}'" in doc.replace("\\\n    ", "")
        assert f"\n{response.text}" in doc, response.text
    analysed = client.post(
        "/api/analyze",
        json={
            "description": "input 3x32x32\nconv2d 16 k=k p=1\nrelu\n",
            "set": {"k": 3},
            "convention": "full",
        },
    )
    for line in ('"params": 448,', '"macs": 442368,', '"flops": 901120,'):
        assert line in analysed.text and line in doc
