"""The runs view's API: run folders as the lab writes them, read without the lab code,
and nothing served from outside the folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from convlens.web.app import create_app
from convlens.web.limits import Limits

METRICS = (
    "epoch,train_loss,val_loss,val_accuracy\n1,2.5,2.25,0.125\n2,1.75,2,0.25\n3,1.5,1.875,0.375\n"
)


def make_runs(root: Path) -> Path:
    """Two lab runs as ``convlens lab colourize`` leaves them, one half-written, and a
    folder that is no run."""
    good = root / "colour_cnn-b100-s0"
    (good / "grids").mkdir(parents=True)
    (good / "config.json").write_text(json.dumps({"model": "colour_cnn", "epochs": 3}))
    (good / "metrics.csv").write_text(METRICS)
    Image.new("RGB", (40, 20), (200, 30, 30)).save(good / "learning_curves.png")
    Image.new("RGB", (30, 30), (30, 30, 200)).save(good / "grids" / "epoch_001.png")
    (good / "notes.txt").write_text("not an image")
    broken = root / "sweep" / "batch_25"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model": ')  # killed while writing
    (broken / "metrics.csv").write_text("epoch,train_loss\n1,nan\n2\n3,0.5\n")
    (root / "not_a_run").mkdir()
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def client(runs_root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Limits(workers=1), runs_dir=runs_root)) as test_client:
        yield test_client


def test_runs_are_listed_by_their_path(client: TestClient, runs_root: Path) -> None:
    answer = client.get("/api/runs").json()
    assert answer["enabled"] is True and answer["folder"] == str(runs_root)
    assert [r["path"] for r in answer["runs"]] == ["colour_cnn-b100-s0", "sweep/batch_25"]


def test_a_run_gives_its_config_metrics_and_images(client: TestClient) -> None:
    run = client.get("/api/runs/colour_cnn-b100-s0").json()
    assert run["config"] == {"model": "colour_cnn", "epochs": 3}
    assert run["metrics"]["columns"] == ["epoch", "train_loss", "val_loss", "val_accuracy"]
    assert run["metrics"]["rows"][1] == [2.0, 1.75, 2.0, 0.25]
    assert run["images"] == ["grids/epoch_001.png", "learning_curves.png"]
    assert run["problems"] == []
    image = client.get("/runs-files/colour_cnn-b100-s0/grids/epoch_001.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_half_written_run_reports_its_problems(client: TestClient) -> None:
    run = client.get("/api/runs/sweep/batch_25").json()
    assert run["config"] is None
    assert run["problems"][0].startswith("config.json cannot be read: Expecting value")
    assert run["problems"][1] == "metrics.csv line 3: 1 cells, expected 2"
    assert run["metrics"]["rows"] == [[1.0, None], [3.0, 0.5]]


def test_nothing_outside_the_runs_folder_is_served(
    client: TestClient, runs_root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    (runs_root / "colour_cnn-b100-s0" / "escape.png").symlink_to(secret)
    for path in (
        "/runs-files/colour_cnn-b100-s0/escape.png",  # a link out of the folder
        "/runs-files/colour_cnn-b100-s0/notes.txt",  # not an image
        "/runs-files/..%2F" + secret.parent.name + "%2Fsecret.png",
        "/runs-files/%2Fetc%2Fpasswd",
        "/api/runs/not_a_run",
        "/api/runs/..%2F..",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()


def test_without_a_runs_folder_the_view_says_so() -> None:
    with TestClient(create_app(Limits(workers=1))) as client:
        assert client.get("/api/runs").json() == {"enabled": False, "runs": []}
        response = client.get("/api/runs/anything")
        assert response.status_code == 404
        assert "start the server with --runs DIR" in response.json()["error"]
