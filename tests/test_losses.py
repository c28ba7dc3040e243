"""Losses, class weights and optimizers on a small batch of real faces."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from facesegtool.data.dataset import FaceParsingDataset, load_prepared
from facesegtool.labels import CLASS_INDEX, EMPIRICAL_WEIGHTS, IGNORE_INDEX, NUM_CLASSES
from facesegtool.training.losses import LOSSES, build_loss, loss_weights
from facesegtool.training.optim import OPTIMIZERS, build_optimizer
from conftest import CELEBAMASK_MINI, write_tiny_prepared

pytestmark = [pytest.mark.skipif(not CELEBAMASK_MINI.is_dir(), reason="shared celebamask-mini data not present"), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_tiny_prepared(tmp_path_factory.mktemp("losses") / "prep", n_train=8, n_val=2, size=48)


@pytest.fixture(scope="module")
def batch(prepared):
    ds = FaceParsingDataset(prepared, "train")
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.stack(ys)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, NUM_CLASSES, 1),
    )


def fit(loss_fn, x, y, steps=12, optimizer="adam", lr=1e-2):
    net = small_net()
    opt = build_optimizer(optimizer, net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("scheme", ["equal", "empirical", "proportional"])
@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_finite_and_decreasing_on_real_faces(name, scheme, prepared, batch):
    x, y = batch
    y = y.clone()
    y[:, :2, :] = IGNORE_INDEX  # a band of unlabelled pixels, as off-palette edges give
    weights = loss_weights(load_prepared(prepared), scheme)
    losses = fit(build_loss(name, weights), x, y, steps=20)
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < 0.9 * losses[0], f"{name}/{scheme} did not decrease: {losses}"


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_count(name, batch):
    x, y = batch
    y = y.clone()
    y[:, :, :10] = IGNORE_INDEX
    torch.manual_seed(1)
    logits = torch.randn(y.shape[0], NUM_CLASSES, *y.shape[1:])
    changed = logits.clone()
    changed[:, :, :, :10] = torch.randn_like(changed[:, :, :, :10]) * 10
    loss = build_loss(name, [1.0] * NUM_CLASSES)
    assert loss(logits, y).item() == pytest.approx(loss(changed, y).item(), rel=1e-5)
    # while the labelled pixels do count: nudging them towards the truth lowers the loss
    toward_truth = logits + 6.0 * F.one_hot(torch.where(y == IGNORE_INDEX, 0, y), NUM_CLASSES).permute(0, 3, 1, 2) - 3.0
    toward_truth[:, :, :, :10] = logits[:, :, :, :10]
    assert loss(toward_truth, y).item() < 0.9 * loss(logits, y).item()


def test_focal_is_a_per_pixel_focal_term(batch):
    _, y = batch
    weights = [float(w) for w in EMPIRICAL_WEIGHTS]
    onehot = F.one_hot(y, NUM_CLASSES).permute(0, 3, 1, 2).float()
    easy = onehot * 4.0  # right and confident everywhere: p_t ~ 0.84
    hard = onehot * 0.5  # right but unsure: p_t ~ 0.14
    ce, focal = build_loss("ce", weights), build_loss("focal", weights, gamma=2.0)
    # gamma = 0 is exactly the weighted cross-entropy
    assert build_loss("focal", weights, gamma=0.0)(hard, y).item() == pytest.approx(ce(hard, y).item(), rel=1e-5)
    # and it shrinks easy pixels far more than hard ones: (1 - p_t)^2
    easy_ratio = focal(easy, y).item() / ce(easy, y).item()
    hard_ratio = focal(hard, y).item() / ce(hard, y).item()
    p_easy = math.exp(4) / (math.exp(4) + NUM_CLASSES - 1)
    assert easy_ratio == pytest.approx((1 - p_easy) ** 2, rel=1e-4)
    assert hard_ratio > 20 * easy_ratio
    # mixed map: per-pixel, not a batch-level rescale of CE
    mixed = torch.where(torch.arange(y.shape[-1]) < y.shape[-1] // 2, easy, hard)
    assert focal(mixed, y).item() / ce(mixed, y).item() not in (pytest.approx(easy_ratio), pytest.approx(hard_ratio))


def test_class_weights_change_the_loss_as_specified(batch):
    _, y = batch
    torch.manual_seed(2)
    logits = torch.randn(y.shape[0], NUM_CLASSES, *y.shape[1:])
    face = CLASS_INDEX["face"]
    only_face = [0.0] * NUM_CLASSES
    only_face[face] = 1.0
    face_pixels = torch.where(y == face, y, torch.full_like(y, IGNORE_INDEX))
    for name in ("ce", "focal", "bias"):
        weighted = build_loss(name, only_face)(logits, y).item()
        if name == "bias":  # its modulating factor depends on every labelled pixel's variance
            assert weighted != pytest.approx(build_loss(name, None)(logits, y).item(), rel=1e-3)
            continue
        assert weighted == pytest.approx(build_loss(name, None)(logits, face_pixels).item(), rel=1e-5)
    # region losses: right on every class but face (called hair); weighting face up must cost more
    wrong_face = 6.0 * F.one_hot(torch.where(y == face, CLASS_INDEX["hair"], y), NUM_CLASSES).permute(0, 3, 1, 2).float() - 3.0
    face_heavy = [1.0] * NUM_CLASSES
    face_heavy[face] = 5.0
    for name in ("bce", "dice", "tversky"):
        assert build_loss(name, face_heavy)(wrong_face, y).item() > 1.5 * build_loss(name, None)(wrong_face, y).item()


def test_dice_is_tversky_with_equal_alpha_beta(batch):
    _, y = batch
    logits = torch.randn(y.shape[0], NUM_CLASSES, *y.shape[1:])
    dice = build_loss("dice", EMPIRICAL_WEIGHTS)(logits, y).item()
    assert dice == pytest.approx(build_loss("tversky", EMPIRICAL_WEIGHTS, alpha=0.5, beta=0.5)(logits, y).item())
    # beta > alpha punishes misses: a prediction of all background misses every face part
    all_bg = torch.full_like(logits, -5.0)
    all_bg[:, 0] = 5.0
    recall_heavy = build_loss("tversky", None, alpha=0.1, beta=0.9)(all_bg, y).item()
    precision_heavy = build_loss("tversky", None, alpha=0.9, beta=0.1)(all_bg, y).item()
    assert recall_heavy > precision_heavy


def test_bias_loss_is_ce_scaled_by_its_variance_factor(batch):
    _, y = batch
    torch.manual_seed(3)
    logits = torch.randn(y.shape[0], NUM_CLASSES, *y.shape[1:]) * torch.rand(y.shape[0], 1, *y.shape[1:]) * 3
    ce = build_loss("ce", None)(logits, y).item()
    bias = build_loss("bias", None, alpha=0.3, beta=0.3)(logits, y).item()
    # z(v) = exp(0.3 v) - 0.3 with v in [0, 1]: between 0.7 and 1.05 times the CE
    assert 0.7 * ce < bias < (math.exp(0.3) - 0.3) * ce
    # high-variance (diverse) pixels weigh more: the scale moves towards exp(alpha) - beta as alpha grows
    assert build_loss("bias", None, alpha=2.0, beta=0.3)(logits, y).item() > bias


def test_weight_schemes_from_the_manifest(prepared):
    manifest = load_prepared(prepared)
    assert loss_weights(manifest, "equal") == [1.0] * NUM_CLASSES
    assert loss_weights(manifest, "empirical") == list(map(float, EMPIRICAL_WEIGHTS))
    prop = loss_weights(manifest, "proportional")
    pixels = manifest["class_pixels"]["train"]
    present = [i for i, p in enumerate(pixels) if p > 0]
    # inverse frequency: rarer classes weigh more; normalised to geometric mean 1
    rarest, commonest = min(present, key=lambda i: pixels[i]), max(present, key=lambda i: pixels[i])
    assert prop[rarest] > 1 > prop[commonest]
    assert math.exp(sum(math.log(prop[i]) for i in present) / len(present)) == pytest.approx(1.0, rel=1e-4)
    # a manifest without the table gets the same numbers computed from its pixel counts
    bare = {k: v for k, v in manifest.items() if k != "weights"}
    assert loss_weights(bare, "proportional") == pytest.approx(prop, rel=1e-5)
    with pytest.raises(ValueError, match="unknown weight scheme"):
        loss_weights(manifest, "magic")


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        build_loss("hinge")
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        build_optimizer("lion", small_net().parameters())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_trains(name, batch):
    x, y = batch
    losses = fit(build_loss("ce"), x, y, steps=10, optimizer=name, lr=0.05 if name == "sgd" else 1e-2)
    assert losses[-1] < 0.9 * losses[0], losses


def test_a_sum_of_losses_is_the_sum_of_its_terms(batch):
    x, y = batch
    torch.manual_seed(2)
    logits = torch.randn(y.shape[0], NUM_CLASSES, *y.shape[1:])
    weights = [float(w) for w in EMPIRICAL_WEIGHTS]
    total = build_loss("ce+dice", weights)(logits, y).item()
    parts = build_loss("ce", weights)(logits, y).item() + build_loss("dice", weights)(logits, y).item()
    assert total == pytest.approx(parts, rel=1e-6)
    # options reach only the terms that take them: gamma is focal's, not CE's
    focal_sum = build_loss("ce+focal", weights, gamma=0.0)(logits, y).item()
    assert focal_sum == pytest.approx(2 * build_loss("ce", weights)(logits, y).item(), rel=1e-5)
    losses = fit(build_loss("ce+dice", weights), x, y, steps=20)
    assert losses[-1] < 0.9 * losses[0], losses
    with pytest.raises(ValueError, match="ce\\+dice"):
        build_loss("ce+lovasz", weights)
