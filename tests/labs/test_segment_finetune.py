"""Fine-tuning in ``lab segment``: a DeepLabv3 whose backbone comes from a ``lab classify``
run (or a weights file); --train-only and --freeze-bn freeze exactly what they say; the
three-way comparison writes one table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_classify_train import small as small_classify
from test_segment_data import write_sections

from convlens.errors import DataError
from convlens.labs.classify import load_run as load_classify_run
from convlens.labs.classify import train as train_classify
from convlens.labs.runtime import finetune
from convlens.labs.seg_finetune import FINETUNE_COLUMNS, compare_finetuning
from convlens.labs.segment import SegmentConfig, build_model, init_weights, train

MODEL = "deeplabv3_cifar?backbone=resnet9&width=4"


@pytest.fixture(scope="module")
def classify_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("classify") / "run"
    train_classify(small_classify(tiny_data, out, epochs=1), progress_bar=False)
    return out


@pytest.fixture(scope="module")
def sections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sections(tmp_path_factory.mktemp("em"), n=5, size=48)


def small(data: Path, out: Path, init: Path, **changes: object) -> SegmentConfig:
    base = SegmentConfig(
        data=str(data), model=MODEL, epochs=1, batch_size=4, crop=32, repeat=2, val=1,
        loss="ce", init=str(init), out=str(out), device="cpu", threads=1,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_classify_run_loads_into_the_backbone(classify_run: Path) -> None:
    classifier, _ = load_classify_run(classify_run)
    source = weights(classifier)
    model = build_model(MODEL, 2, 0, seed=3)
    head = weights(model)
    said = init_weights(model, str(classify_run), [])
    assert said.startswith("backbone (")
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            assert torch.equal(value, source[key.removeprefix("backbone.")]), key
        else:
            assert torch.equal(value, head[key]), key  # the new head is left as built
    assert not any(k.startswith("fc.") for k in model.state_dict())


def test_load_weights_with_a_prefix_checks_shapes_and_unused_tensors(
    classify_run: Path, tmp_path: Path
) -> None:
    wider = build_model("deeplabv3_cifar?backbone=resnet9&width=8", 2, 0, seed=0)
    with pytest.raises(DataError, match=r"'backbone\.prep\.0\.weight' has shape \(4, 3, 3, 3\) "
                       r"in the file but \(8, 3, 3, 3\)"):  # fmt: skip
        init_weights(wider, str(classify_run), [])
    model = build_model(MODEL, 2, 0, seed=0)
    with pytest.raises(DataError, match=r"the file's 'backbone\.fc\.weight' is not in the model"):
        finetune.load_weights(model, classify_run, prefix="backbone.")  # fc not declared unused
    other = build_model("deeplabv3_cifar?backbone=resnet20", 2, 0, seed=0)
    with pytest.raises(DataError, match=r"it has no 'backbone\.conv1\.weight'"):
        init_weights(other, str(classify_run), [])
    path = tmp_path / "whole.pt"
    torch.save(weights(model), path)  # a whole segmentation model's weights load as they are
    fresh = build_model(MODEL, 2, 0, seed=1)
    assert init_weights(fresh, str(path), []).endswith(f"tensors from {path}")
    pairs = zip(fresh.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize(
    ("patterns", "freeze_bn"), [(["classifier.4*"], True), (["classifier.*"], True), ([], False)]
)
def test_train_only_changes_exactly_the_chosen_parameters(
    classify_run: Path, sections: Path, tmp_path: Path, patterns: list[str], freeze_bn: bool
) -> None:
    cfg = small(sections, tmp_path / "r", classify_run, train_only=patterns, freeze_bn=freeze_bn)
    model = build_model(MODEL, 2, 0, cfg.seed)
    init_weights(model, str(classify_run), [])
    before = weights(model)
    result = train(cfg, progress_bar=False)
    assert result.model is not None
    after = result.model.state_dict()
    chosen = (lambda n: n.startswith("classifier.4.")) if patterns == ["classifier.4*"] else (
        (lambda n: n.startswith("classifier.")) if patterns else (lambda n: True)
    )  # fmt: skip
    for name, parameter in result.model.named_parameters():
        assert parameter.requires_grad == chosen(name), name
        assert torch.equal(after[name], before[name]) != chosen(name), name
    frozen_bn = json.loads((tmp_path / "r" / "summary.json").read_text())["frozen_batchnorm"]
    running = [k for k in after if k.endswith("running_mean")]
    for key in running:  # frozen BatchNorm in eval mode keeps its running statistics
        module = key.removesuffix(".running_mean")
        assert torch.equal(after[key], before[key]) == (module in frozen_bn), key
    if freeze_bn:
        assert "backbone.prep.1" in frozen_bn
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    trainable = sum(p.numel() for n, p in result.model.named_parameters() if chosen(n))
    assert summary["trainable_params"] == trainable
    assert summary["predicted_memory"]["grads"] == 4 * trainable


def test_the_comparison_table(classify_run: Path, sections: Path, tmp_path: Path) -> None:
    cfg = small(sections, tmp_path / "unused", classify_run)
    rows = compare_finetuning(cfg, str(tmp_path / "cmp"), progress_bar=False)
    assert [r["run"] for r in rows] == ["last-layer", "head", "whole"]
    params = [r["trainable_params"] for r in rows]
    assert params[0] == 256 * 2 + 2 and params[0] < params[1] < params[2]
    saved = [r["memory_saved_activations"] for r in rows]
    assert saved[0] < saved[1] < saved[2]
    text = (tmp_path / "cmp" / "finetune.md").read_text()
    assert all(f"| {name} |" in text.replace("`", "") for name in ("last-layer", "head", "whole"))
    assert (tmp_path / "cmp" / "finetune.csv").read_text().splitlines()[0].split(",") == (
        FINETUNE_COLUMNS
    )
    again = compare_finetuning(cfg, str(tmp_path / "cmp"), progress_bar=False)  # reused
    assert again == rows
