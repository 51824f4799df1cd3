"""State-dict keys and shapes follow torchvision's, so its weights load from a local file."""

from __future__ import annotations

import pytest
import torch

from convlens.zoo.measure import build

# (model, key, shape) triples read off torchvision's architectures.
TORCHVISION_KEYS = [
    ("resnet50", "conv1.weight", (64, 3, 7, 7)),
    ("resnet50", "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("resnet50", "layer4.2.bn3.running_var", (2048,)),
    ("resnet50", "fc.weight", (1000, 2048)),
    ("resnet18", "layer2.0.downsample.1.weight", (128,)),
    ("densenet121", "features.conv0.weight", (64, 3, 7, 7)),
    ("densenet121", "features.denseblock1.denselayer1.norm1.weight", (64,)),
    ("densenet121", "features.denseblock4.denselayer16.conv2.weight", (32, 128, 3, 3)),
    ("densenet121", "features.transition3.conv.weight", (512, 1024, 1, 1)),
    ("densenet121", "features.norm5.weight", (1024,)),
    ("densenet121", "classifier.weight", (1000, 1024)),
    ("vgg16", "features.28.weight", (512, 512, 3, 3)),
    ("vgg16", "classifier.6.weight", (1000, 4096)),
    ("alexnet", "features.10.weight", (256, 256, 3, 3)),
    ("alexnet", "classifier.1.weight", (4096, 9216)),
    ("mobilenet_v2", "features.0.0.weight", (32, 3, 3, 3)),
    ("mobilenet_v2", "features.1.conv.0.0.weight", (32, 1, 3, 3)),
    ("mobilenet_v2", "features.1.conv.1.weight", (16, 32, 1, 1)),
    ("mobilenet_v2", "features.2.conv.0.0.weight", (96, 16, 1, 1)),
    ("mobilenet_v2", "features.18.0.weight", (1280, 320, 1, 1)),
    ("mobilenet_v2", "classifier.1.weight", (1000, 1280)),
    ("googlenet", "conv1.bn.weight", (64,)),
    ("googlenet", "inception3a.branch3.1.conv.weight", (32, 16, 3, 3)),
    ("googlenet", "inception5b.branch4.1.conv.weight", (128, 832, 1, 1)),
    ("googlenet", "fc.weight", (1000, 1024)),
    ("deeplabv3_resnet50", "backbone.layer4.0.conv2.weight", (512, 512, 3, 3)),
    ("deeplabv3_resnet50", "classifier.0.convs.3.0.weight", (256, 2048, 3, 3)),
    ("deeplabv3_resnet50", "classifier.0.project.0.weight", (256, 1280, 1, 1)),
    ("deeplabv3_resnet50", "classifier.4.weight", (21, 256, 1, 1)),
    ("deeplabv3_resnet101", "backbone.layer3.22.conv3.weight", (1024, 256, 1, 1)),
]


@pytest.mark.parametrize(("name", "key", "shape"), TORCHVISION_KEYS)
def test_torchvision_key_and_shape(name: str, key: str, shape: tuple[int, ...]) -> None:
    state = build(name).state_dict()
    assert key in state
    assert tuple(state[key].shape) == shape


def test_resnet_has_no_extra_keys() -> None:
    keys = build("resnet50").state_dict().keys()
    tops = {key.split(".")[0] for key in keys}
    assert tops == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    assert not any(".se." in key for key in keys)


def test_googlenet_aux_heads_match_torchvision() -> None:
    state = build("googlenet", aux_logits=True).state_dict()
    assert tuple(state["aux1.conv.conv.weight"].shape) == (128, 512, 1, 1)
    assert tuple(state["aux2.fc1.weight"].shape) == (1024, 2048)
    assert tuple(state["aux2.fc2.weight"].shape) == (1000, 1024)


def test_googlenet_returns_aux_outputs_in_training_only() -> None:
    torch.manual_seed(0)
    model = build("googlenet", device="cpu", aux_logits=True).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(t.shape) for t in outputs] == [(2, 1000)] * 3
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_deeplab_is_dilated_with_output_stride_8() -> None:
    model = build("deeplabv3_resnet50")
    features = model.backbone(torch.empty(1, 3, 224, 224, device="meta"))
    assert tuple(features["out"].shape) == (1, 2048, 28, 28)  # 224 / 8
    assert model.backbone.layer3[1].conv2.dilation == (2, 2)
    assert model.backbone.layer4[1].conv2.dilation == (4, 4)
    assert model.backbone.layer4[0].conv2.stride == (1, 1)
    rates = [model.classifier[0].convs[i][0].dilation[0] for i in (1, 2, 3)]
    assert rates == [12, 24, 36]
    assert "avgpool" not in dict(model.backbone.named_children())


def test_deeplab_finetune_only_the_last_conv() -> None:
    model = build("deeplabv3_resnet50", device="cpu").eval()
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("classifier.4.")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.4.weight", "classifier.4.bias"]
    out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == ["out"] and out["out"].shape == (1, 21, 64, 64)
    out["out"].mean().backward()
    assert model.classifier[4].weight.grad is not None
    assert model.backbone.conv1.weight.grad is None


def test_deeplab_aux_head() -> None:
    model = build("deeplabv3_resnet50", aux_loss=True, num_classes=5)
    out = model(torch.empty(1, 3, 96, 96, device="meta"))
    assert list(out) == ["out", "aux"]
    assert tuple(out["aux"].shape) == (1, 5, 96, 96)


def test_se_resnet50_blocks_carry_se() -> None:
    model = build("se_resnet50")
    block = model.layer4[0]
    assert block.se is not None and block.se.fc1.out_channels == 2048 // 16
    # 2·C²/r + C/r + C per block, summed over 3 + 4 + 6 + 3 blocks
    extra = sum(
        n * (2 * c * c // 16 + c // 16 + c) for n, c in ((3, 256), (4, 512), (6, 1024), (3, 2048))
    )
    assert extra == 28_088_024 - 25_557_032
