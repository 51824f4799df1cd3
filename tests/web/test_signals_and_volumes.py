"""The web API on a signal and a clip: the analysis has its numbers per axis; the drawn
receptive field, made for images, says so instead of drawing a wrong one."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_a_signal_is_analysed_and_its_field_is_not_drawn(client: TestClient) -> None:
    text = "input 1x100\nconv1d 8 k=5 s=2 p=2\nmaxpool1d 2\n"
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 200, response.text
    assert "rf" in response.text and "maxpool1d" in response.text
    response = client.post("/api/receptive-field", json={"description": text, "layer": 2})
    assert response.status_code == 422
    error = response.json()["error"]
    assert "the receptive field is drawn on images (C, H, W); this input is (1, 100)" in error


def test_a_clip_is_analysed(client: TestClient) -> None:
    text = "input 3x8x16x16\nconv3d 4 k=3 p=1\nmaxpool3d (1,2,2)\n"
    response = client.post("/api/analyze", json={"description": text})
    assert response.status_code == 200, response.text
    assert "maxpool3d" in response.text
