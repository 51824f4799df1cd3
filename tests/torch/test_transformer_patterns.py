"""Transformers as timm writes them, rebuilt line for line (timm is not installed here: it
pulls torchvision), each held to PyTorch by ``check_against_pytorch``: parameters, MACs
against FlopCounterMode, the real output, and saved activations against autograd.

Sources mimicked (huggingface/pytorch-image-models, timm 1.0):
- ``timm/models/vision_transformer.py``: ``Attention.forward`` (qkv reshape, permute(2, 0, 3,
  1, 4), unbind(0); fused ``F.scaled_dot_product_attention`` or the explicit ``q @
  k.transpose(-2, -1)``, softmax, ``@ v``), ``Block``, ``VisionTransformer._pos_embed``
  (``torch.cat((cls_token.expand(B, -1, -1), x), dim=1)``) and the ``x[:, 0]`` token pool;
- ``timm/layers/patch_embed.py``: ``PatchEmbed`` (conv, ``flatten(2).transpose(1, 2)``);
- ``timm/layers/drop.py``: ``drop_path`` (a ``x.new_empty((N, 1, …)).bernoulli_`` mask);
- ``timm/models/swin_transformer.py``: ``window_partition``, ``window_reverse``,
  ``WindowAttention.forward`` (relative position bias, shifted-window mask),
  ``SwinTransformerBlock._attn`` (roll, ``F.pad``, crop, roll back) and ``PatchMerging``;
- ``timm/models/levit.py``: ``LinearNorm.forward`` (``bn(x.flatten(0, 1)).reshape_as(x)``).
"""

# The modules below keep timm's own lines, even where ruff would write them otherwise.
# ruff: noqa: RUF005, RUF059, SIM108

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tests.torch.pytorch_truth import check_against_pytorch

# -- timm/layers/drop.py ------------------------------------------------------------------


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # work with diff dim tensors, not just 2D
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0:
        random_tensor.div_(keep_prob)
    return x * random_tensor


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


# -- timm/models/vision_transformer.py ----------------------------------------------------


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, fused: bool, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.norm = nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0
            )
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.norm(x)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.drop1 = nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0)
        self.norm, self.fc2, self.drop2 = nn.Identity(), nn.Linear(hidden, dim), nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, fused: bool, drop: float, attn_drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, fused, attn_drop)
        self.ls1, self.drop_path1 = nn.Identity(), DropPath(drop) if drop else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2, self.drop_path2 = nn.Identity(), DropPath(drop) if drop else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


class PatchEmbed(nn.Module):  # timm/layers/patch_embed.py, flatten=True (NCHW → NLC)
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # NCHW -> NLC


class TinyViT(nn.Module):
    """VisionTransformer with a class token, learned position embedding and token pool."""

    def __init__(
        self, fused: bool, drop_path_rate: float = 0.0, attn_drop: float = 0.0, depth: int = 2
    ) -> None:
        super().__init__()
        dim, patches = 32, (16 // 4) ** 2
        self.patch_embed = PatchEmbed(4, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, patches + 1, dim) * 0.02)
        self.pos_drop = nn.Dropout(0.0)
        self.blocks = nn.Sequential(
            *[Block(dim, 4, fused, drop_path_rate, attn_drop) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        to_cat = [self.cls_token.expand(x.shape[0], -1, -1)]
        x = torch.cat(to_cat + [x], dim=1)
        x = x + self.pos_embed
        return self.pos_drop(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed(self.patch_embed(x))
        x = self.norm(self.blocks(x))
        x = x[:, 0]  # class token
        return self.head(x)


@pytest.mark.parametrize("batch", [1, 2])  # with one sample, expand(1, …) is no stride-0 view
@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "explicit-matmul"])
def test_timm_attention_with_a_class_token_is_exact(fused: bool, batch: int) -> None:
    model = TinyViT(fused)
    x = torch.rand(batch, 3, 16, 16)
    report = check_against_pytorch(model, x)
    dim, tokens, heads = 32, 17, 4
    attention = 2 * tokens * tokens * dim  # QKᵀ and weights·V over all heads, per sample
    per_block = tokens * dim * 3 * dim + attention + tokens * dim * dim + 2 * tokens * dim * 4 * dim
    assert report.totals.macs == batch * (16 * dim * 48 + 2 * per_block + dim * 10)
    token = next(r for r in report.layers if r.kind == "concat_tensor")
    assert (token.params, token.output_shape) == (dim, (tokens, dim))  # the class token
    parts = [r for r in report.layers if r.name.startswith("blocks.0.attn.narrow")]
    assert [r.output_shape for r in parts] == [(heads, tokens, dim // heads)] * 3  # q, k, v
    if fused:
        assert any("CPU flash attention kernel" in w for w in report.warnings)


def test_drop_path_in_training_keeps_one_mask_value_per_sample() -> None:
    model = TinyViT(fused=True, drop_path_rate=0.25)
    x = torch.rand(3, 3, 16, 16)
    report = check_against_pytorch(model, x)
    masks = [r for r in report.layers if r.kind == "tensor_op" and r.args.get("per_sample")]
    assert len(masks) == 4  # two blocks, two drop paths each
    assert all(r.args["weight"] == (1, 1) for r in masks)  # one N×1×1 mask value per sample
    # In eval mode drop-path is the identity: no mask, nothing kept.
    eval_report = __import__("convlens").analyze(model.eval(), input=x)
    assert not any(r.kind == "tensor_op" and r.args.get("per_sample") for r in eval_report.layers)
    assert eval_report.totals.saved_activation_bytes == (
        report.totals.saved_activation_bytes - 4 * 3 * 4
    )


def test_attention_dropout_in_training_is_counted() -> None:
    # timm passes dropout_p only in training mode: traced as it trains, it is counted
    model = TinyViT(fused=True, attn_drop=0.1)
    report = check_against_pytorch(model, torch.rand(2, 3, 16, 16))
    rows = [r for r in report.layers if r.kind == "attention"]
    assert rows and all(r.args["dropout_p"] == 0.1 for r in rows)
    assert all(r.args["kernel"] == "math" for r in rows)  # dropout rules the flash one out


# -- timm/models/swin_transformer.py ------------------------------------------------------


def window_partition(x: torch.Tensor, window_size: tuple[int, int]) -> torch.Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // window_size[0], window_size[0], W // window_size[1], window_size[1], C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size[0], window_size[1], C)
    return windows


def window_reverse(windows: torch.Tensor, window_size: tuple[int, int], H: int, W: int):
    C = windows.shape[-1]
    x = windows.view(
        -1, H // window_size[0], W // window_size[1], window_size[0], window_size[1], C
    )
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)
    return x


def get_relative_position_index(win_h: int, win_w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing="ij"))
    coords_flatten = torch.flatten(coords, 1)
    relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
    relative_coords = relative_coords.permute(1, 2, 0).contiguous()
    relative_coords[:, :, 0] += win_h - 1
    relative_coords[:, :, 1] += win_w - 1
    relative_coords[:, :, 0] *= 2 * win_w - 1
    return relative_coords.sum(-1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int]) -> None:
        super().__init__()
        self.window_size = window_size
        win_h, win_w = window_size
        self.window_area = win_h * win_w
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * win_h - 1) * (2 * win_w - 1), num_heads) * 0.02
        )
        self.register_buffer(
            "relative_position_index", get_relative_position_index(win_h, win_w), persistent=False
        )
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        self.softmax = nn.Softmax(dim=-1)

    def _get_rel_pos_bias(self) -> torch.Tensor:
        relative_position_bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)
        ].view(self.window_area, self.window_area, -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()
        return relative_position_bias.unsqueeze(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn + self._get_rel_pos_bias()
        if mask is not None:
            num_win = mask.shape[0]
            attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.softmax(attn)
        attn = self.attn_drop(attn)
        x = attn @ v
        x = x.transpose(1, 2).reshape(B_, N, -1)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.input_resolution = (resolution, resolution)
        self.window_size, self.shift_size = (window, window), (shift, shift)
        self.window_area = window * window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, self.window_size)
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path2 = nn.Identity()
        self.register_buffer("attn_mask", self.get_attn_mask(), persistent=False)

    def get_attn_mask(self) -> torch.Tensor | None:
        if not any(self.shift_size):
            return None
        H, W = self.input_resolution
        H = -(-H // self.window_size[0]) * self.window_size[0]
        W = -(-W // self.window_size[1]) * self.window_size[1]
        img_mask = torch.zeros((1, H, W, 1))
        cnt = 0
        ws, ss = self.window_size, self.shift_size
        for h in ((0, -ws[0]), (-ws[0], -ss[0]), (-ss[0], None)):
            for w in ((0, -ws[1]), (-ws[1], -ss[1]), (-ss[1], None)):
                img_mask[:, h[0] : h[1], w[0] : w[1], :] = cnt
                cnt += 1
        mask_windows = window_partition(img_mask, self.window_size)
        mask_windows = mask_windows.view(-1, self.window_area)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        has_shift = any(self.shift_size)
        if has_shift:
            shifted_x = torch.roll(
                x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2)
            )
        else:
            shifted_x = x
        pad_h = (self.window_size[0] - H % self.window_size[0]) % self.window_size[0]
        pad_w = (self.window_size[1] - W % self.window_size[1]) % self.window_size[1]
        shifted_x = torch.nn.functional.pad(shifted_x, (0, 0, 0, pad_w, 0, pad_h))
        _, Hp, Wp, _ = shifted_x.shape
        x_windows = window_partition(shifted_x, self.window_size)
        x_windows = x_windows.view(-1, self.window_area, C)
        attn_windows = self.attn(x_windows, mask=self.attn_mask)
        attn_windows = attn_windows.view(-1, self.window_size[0], self.window_size[1], C)
        shifted_x = window_reverse(attn_windows, self.window_size, Hp, Wp)
        shifted_x = shifted_x[:, :H, :W, :].contiguous()
        if has_shift:
            x = torch.roll(shifted_x, shifts=self.shift_size, dims=(1, 2))
        else:
            x = shifted_x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = x.reshape(B, -1, C)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        x = x.reshape(B, H, W, C)
        return x


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        pad_values = (0, 0, 0, W % 2, 0, H % 2)
        x = nn.functional.pad(x, pad_values)
        _, H, W, _ = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        x = self.norm(x)
        x = self.reduction(x)
        return x


class TinySwin(nn.Module):
    """Patch embedding to NHWC, a plain and a shifted window block (resolution 6 with
    windows of 4: padded to 8, four windows), patch merging, average pool, head."""

    def __init__(self) -> None:
        super().__init__()
        dim = 16
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(
            SwinTransformerBlock(dim, 6, 2, window=4, shift=0),
            SwinTransformerBlock(dim, 6, 2, window=4, shift=2),
        )
        self.downsample = PatchMerging(dim)
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # NCHW → NHWC, timm's output_fmt='NHWC'
        x = self.norm(self.downsample(self.blocks(x)))
        return self.head(x.mean((1, 2)))


def test_swin_windows_merge_the_batch_and_split_it_again_exactly() -> None:
    model = TinySwin()
    x = torch.rand(2, 3, 24, 24)
    report = check_against_pytorch(model, x)
    # the batch merged with the windows: (N·4, 16, 16) per sample is (4, 16, 16)
    windows = next(r for r in report.layers if r.name.startswith("blocks.0.view"))
    assert windows.kind == "view"
    attention = [r for r in report.layers if r.kind == "matmul"]
    assert attention[0].output_shape == (4, 2, 16, 16)  # windows, heads, N, N per sample
    assert {r.kind for r in report.layers} >= {"pad", "roll", "narrow", "view"}


def test_merged_batch_figures_do_not_depend_on_the_batch() -> None:
    model = TinySwin()
    one, three = (__import__("convlens").analyze(model, input_size=(n, 3, 24, 24)) for n in (1, 3))
    assert three.totals.macs == 3 * one.totals.macs
    assert three.totals.activation_bytes == 3 * one.totals.activation_bytes
    assert [r.output_shape for r in one.layers] == [r.output_shape for r in three.layers]


# -- timm/models/levit.py -----------------------------------------------------------------


class LinearNorm(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class TinyLeViTMlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.ln1 = LinearNorm(16, 32)
        self.act = nn.Hardswish()
        self.ln2 = LinearNorm(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)  # (N, L, C)
        return x + self.ln2(self.act(self.ln1(x)))


def test_levit_batchnorm_over_the_batch_merged_with_the_tokens() -> None:
    model = TinyLeViTMlp()
    report = check_against_pytorch(model, torch.rand(2, 3, 16, 16))
    norms = [r for r in report.layers if r.kind == "batchnorm1d"]
    assert [(r.output_shape, r.params) for r in norms] == [((16, 32), 64), ((16, 16), 32)]
    assert all(r.args["dim"] == 2 for r in norms)  # channels last of (N·L, C)


@pytest.mark.parametrize("sequence", [False, True], ids=["vectors", "sequences"])
def test_batchnorm1d_on_vectors_and_sequences(sequence: bool) -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm1d(8)
            self.fc = nn.Linear(36 if sequence else 8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).flatten(2)  # (N, C, L)
            return self.fc(self.bn(y if sequence else y.mean(-1)))

    report = check_against_pytorch(Head(), torch.rand(2, 3, 8, 8))
    bn = next(r for r in report.layers if r.kind == "batchnorm1d")
    assert bn.output_shape == ((8, 36) if sequence else (8,)) and bn.args["dim"] == 1


# -- torch.nn's own attention: nn.MultiheadAttention, nn.TransformerEncoderLayer ----------
# F.multi_head_attention_forward is Python that dispatches as one operation; the trace runs
# its body (tracer.RUN_THROUGH). Its output projection folds (L, N, E) into (L·N, E): the
# batch as an inner factor (batch_axis.Layout.outer), which the trace follows.
class TorchAttention(nn.Module):
    """conv → tokens → nn.MultiheadAttention (self-attention) → a head on its output."""

    def __init__(self, batch_first: bool, need_weights: bool) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, 2)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first)
        self.head = nn.Linear(8, 5)
        self.batch_first, self.need_weights = batch_first, need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)  # (N, L, 8)
        if not self.batch_first:
            t = t.transpose(0, 1)  # (L, N, 8)
        y, _ = self.attn(t, t, t, need_weights=self.need_weights)
        return self.head(y if self.batch_first else y.transpose(0, 1))


class TorchEncoder(nn.Module):
    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, 2)
        layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(x).flatten(2).transpose(1, 2))


@pytest.fixture
def no_fast_path():  # type: ignore[no-untyped-def]
    """The oracle counts FLOPs in eval mode, where these modules may take PyTorch's fused
    fast path, which FlopCounterMode does not count; training never takes it."""
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(True)


@pytest.mark.usefixtures("no_fast_path")
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [False, True])
def test_torch_multihead_attention_is_exact(
    batch_first: bool, need_weights: bool, batch: int
) -> None:
    torch.manual_seed(0)
    model = TorchAttention(batch_first, need_weights)
    report = check_against_pytorch(model, torch.randn(batch, 3, 8, 8))
    assert report.totals.unsupported == ()
    kinds = {row.kind for row in report.layers}
    assert ("matmul" if need_weights else "attention") in kinds  # bmm or the fused kernel


@pytest.mark.usefixtures("no_fast_path")
@pytest.mark.parametrize("norm_first", [False, True])
def test_torch_transformer_encoder_is_exact(norm_first: bool) -> None:
    torch.manual_seed(0)
    report = check_against_pytorch(TorchEncoder(norm_first), torch.randn(2, 3, 8, 8))
    assert sum(row.kind == "attention" for row in report.layers) == 2


class ContiguousHeads(nn.Module):
    """q, k, v made contiguous per head, as the math kernel's users write them: the flash
    kernel's output is then contiguous too, and putting the heads back copies."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, 2)
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        n, length, _ = t.shape
        q, k, v = self.qkv(t).view(n, length, 3, 2, 4).permute(2, 0, 3, 1, 4).contiguous()
        a = F.scaled_dot_product_attention(q, k, v)
        return self.proj(a.transpose(1, 2).reshape(n, length, 8))


def test_flash_output_is_stored_like_its_query() -> None:
    report = check_against_pytorch(ContiguousHeads(), torch.randn(2, 3, 8, 8))
    (row,) = [r for r in report.layers if r.kind == "attention"]
    assert row.args["kernel"] == "flash"
    reshape = next(r for r in report.layers if r.kind == "view" and r.args.get("copies"))
    assert reshape.output_shape == (16, 8)  # the heads put back: a copy, as PyTorch makes


# -- nanoGPT's causal self-attention: a mask computed from a buffer, masked_fill ---------
class CausalSelfAttention(nn.Module):
    """karpathy/nanoGPT ``model.py``'s explicit path: ``att.masked_fill(self.bias[:, :,
    :T, :T] == 0, float('-inf'))`` with a lower-triangular buffer (float, as nanoGPT keeps
    it; ``bool_buffer`` holds the mask itself as a bool buffer instead)."""

    def __init__(self, tokens: int, bool_buffer: bool, inplace: bool) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, 2)
        self.c_attn, self.c_proj, self.n_head = nn.Linear(8, 24), nn.Linear(8, 8), 2
        self.bool_buffer, self.inplace = bool_buffer, inplace
        lower = torch.tril(torch.ones(tokens, tokens)).view(1, 1, tokens, tokens)
        self.register_buffer("bias", lower == 0 if bool_buffer else lower)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = self.bias if self.bool_buffer else self.bias[:, :, :T, :T] == 0
        if self.inplace:
            att.masked_fill_(mask, float("-inf"))
        else:
            att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


@pytest.mark.parametrize("bool_buffer", [False, True])
@pytest.mark.parametrize("inplace", [False, True])
def test_nanogpt_causal_mask_is_exact(bool_buffer: bool, inplace: bool) -> None:
    model = CausalSelfAttention(16, bool_buffer, inplace)
    report = check_against_pytorch(model, torch.randn(2, 3, 8, 8))
    (row,) = [r for r in report.layers if r.kind == "masked_fill"]
    assert row.args["mask_kind"] == ("buffer" if bool_buffer else "constant")
    assert row.args["mask"] == (1, 1, 16, 16)
    assert report.totals.buffer_bytes == sum(b.nbytes for b in model.buffers())


class TorchCrossAttention(nn.Module):
    """A decoder layer over a memory of other tokens, or nn.MultiheadAttention with its
    options: keys of another width (kdim, vdim), a causal bool mask, per-head weights."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.embed, self.memory = (
            nn.Conv2d(3, 8, 2, 2),
            nn.Conv2d(3, 6 if kind == "kdim" else 8, 4, 4),
        )
        if kind in ("decoder", "decoder_norm_first"):
            self.block: nn.Module = nn.TransformerDecoderLayer(
                8, 2, 16, 0.0, batch_first=True, norm_first=kind == "decoder_norm_first"
            )
        else:
            self.block = (
                nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=6)
                if (kind == "kdim")
                else nn.MultiheadAttention(8, 2, batch_first=True)
            )
        self.register_buffer("causal", torch.triu(torch.ones(16, 16, dtype=torch.bool), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)  # (N, 16, 8)
        memory = self.memory(x).flatten(2).transpose(1, 2)  # (N, 4, 8 or 6)
        if self.kind.startswith("decoder"):
            return self.block(t, memory)
        if self.kind == "kdim":
            return self.block(t, memory, memory)[0]
        if self.kind == "mask":
            return self.block(t, t, t, attn_mask=self.causal, need_weights=False)[0]
        return self.block(t, t, t, average_attn_weights=False)[0]


@pytest.mark.usefixtures("no_fast_path")
@pytest.mark.parametrize("kind", ["decoder", "decoder_norm_first", "kdim", "mask", "per_head"])
def test_torch_cross_attention_and_options_are_exact(kind: str) -> None:
    torch.manual_seed(0)
    report = check_against_pytorch(TorchCrossAttention(kind), torch.randn(2, 3, 8, 8))
    assert report.totals.unsupported == ()
