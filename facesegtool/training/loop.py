"""The training loop: prepared data -> model, with validation, checkpoints, resume, and DDP.

    result = train(TrainConfig(data="prepared/celeba256", out="runs/x", model="unet-mobilenetv3-small"))

Every epoch: train, validate (confusion matrix over argmax on the val split), then write
last.pt (everything needed to resume: model, optimizer, scheduler, epoch, history, RNG),
best.pt when val macro F1 without background improves, metrics.csv and curves.png.
A killed run resumed with `resume=True` loses at most the epoch it was in.

Under `torchrun --nproc_per_node N` it trains with DistributedDataParallel (gloo on CPU,
nccl on GPU); only rank 0 writes files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import ConcatDataset, DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ..atomic import check_apart, check_writable_dir, remove_stale_temps, write_bytes_atomic
from ..checkpoint import DEFAULT_INPUT, CheckpointError, make_checkpoint, read_checkpoint, save_checkpoint
from ..data.augment import build_augmentation
from ..data.dataset import FaceParsingDataset, load_prepared, seed_worker
from ..data.prepare import check_size
from ..data.source import is_prepared_set
from ..errors import FacesegError
from ..labels import CLASSES, NUM_CLASSES
from ..metrics import ConfusionMeter, SegmentationScores
from ..models import create_model
from ..models.pretrained import PretrainedWeightsError, load_imagenet_into, supports_imagenet
from ..threads import check_threads
from .losses import build_loss, loss_weights
from .optim import build_optimizer
from .distill import DistillLoss, Teacher, UnlabelledFaces, recipe
from .partial import PartialCodes, PartialLabelLoss, PartialLabels, check_loss, item_unlabelled, labelled_classes
from .run_lock import RunLockedError, run_lock

SCHEDULERS = ("plateau", "onecycle", "cosine", "none")
# Settings of the environment, not of the recipe: on resume these come from the new call,
# everything else from the checkpoint, so the resumed run trains the same model the same way.
RUNTIME_FIELDS = ("data", "out", "workers", "threads", "device", "resume", "progress")


class TrainingError(FacesegError, RuntimeError):
    """A run that cannot start or continue (bad resume, existing run dir, ...)."""


@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "unet-mobilenetv3-small"
    model_kwargs: dict = field(default_factory=dict)
    pretrained: str | None = None  # "imagenet" | "none"; None: imagenet where the model has weights
    extra_train: list = field(default_factory=list)  # more prepared dirs whose train items join (e.g. pseudo-labels)
    init: str | None = None  # start from this checkpoint's weights (same model), e.g. a teacher to fine-tune
    init_encoder: str | None = None  # encoder weights from this checkpoint (another model over the same encoder)
    teacher: list = field(default_factory=list)  # models whose averaged soft scores the student learns (distill.py)
    teacher_beard: str | None = None  # a teacher member that splits the ensemble's face + beard mass
    teacher_flip: bool = True  # each teacher member averaged with its mirrored pass
    distill_temperature: float = 2.0
    distill_weight: float = 0.7  # share of the soft (teacher) term; the rest is `loss` on the labels
    unlabelled: list = field(default_factory=list)  # folders of unlabelled face crops (taught by the teacher only)
    loss: str = "ce"
    loss_kwargs: dict = field(default_factory=dict)
    weights: str = "equal"
    class_weight: dict = field(default_factory=dict)  # class name -> weight, over the scheme's (e.g. {"beard": 10})
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float | None = None
    epochs: int | None = None  # None: 20 for a new run, the checkpoint's on resume
    batch_size: int = 8
    size: int | None = None  # None: the prepared size
    scheduler: str = "plateau"
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    patience: int = 3  # early stopping on val macro F1 without background; 0 = off
    augment: str = "light"
    seed: int = 0
    channels_last: bool = False
    workers: int = 1
    threads: int | None = None
    device: str = "auto"  # auto | cpu | cuda
    resume: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    out: Path
    best_path: Path
    last_path: Path
    epochs_run: int  # epochs completed in total (including before a resume)
    best_epoch: int
    best_metric: float  # val macro F1 without background at best_epoch
    history: list[dict]
    stopped_early: bool


# --- distributed -------------------------------------------------------------------------------


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Dist:
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked for, but torch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(device=torch.device("cuda") if use_cuda else torch.device("cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        device=torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
    )


def _all_reduce(t: torch.Tensor, d: _Dist) -> torch.Tensor:
    if d.world > 1:
        dist.all_reduce(t)
    return t


# --- building blocks -----------------------------------------------------------------------------


def _build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """(scheduler, steps per batch?) — plateau steps per epoch on the val metric, the rest per batch."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.2)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=config.lr * 1e-3)
    if config.scheduler == "none":
        return None
    raise ValueError(f"unknown scheduler {config.scheduler!r}; use one of {', '.join(SCHEDULERS)}")


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": list(random.getstate()[1]),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_key"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))


def _resolve_config(config: TrainConfig, out: Path) -> tuple[TrainConfig, dict | None]:
    """The config to run with, and the checkpoint to resume from (None for a fresh run)."""
    last = out / "last.pt"
    if not config.resume:
        if last.exists():
            raise TrainingError(f"{out} already holds a run (last.pt): pass --resume to continue it, or another --out")
        return _with_defaults(config), None
    if not last.exists():
        return _with_defaults(config), None  # nothing to resume yet (killed before epoch 1 ended)
    ckpt = read_checkpoint(last)
    if "optimizer" not in ckpt or "epoch" not in ckpt:
        raise TrainingError(f"{last} has no training state to resume from")
    saved = dict(ckpt["train_config"])
    known = {f.name for f in fields(TrainConfig)}
    merged = {k: v for k, v in saved.items() if k in known}
    merged.update({k: getattr(config, k) for k in RUNTIME_FIELDS})
    if config.epochs is not None and config.epochs != saved["epochs"]:
        if saved["scheduler"] in ("onecycle", "cosine"):
            raise TrainingError(
                f"cannot change --epochs from {saved['epochs']} to {config.epochs} on resume: "
                f"the {saved['scheduler']} schedule was planned for {saved['epochs']} epochs"
            )
        merged["epochs"] = config.epochs
    return TrainConfig(**merged), ckpt


def _with_defaults(config: TrainConfig) -> TrainConfig:
    values = asdict(config)
    if values["epochs"] is None:
        values["epochs"] = 20
    return TrainConfig(**values)


def _loader(ds, config: TrainConfig, d: _Dist, train: bool) -> tuple[DataLoader, DistributedSampler | None]:
    sampler = None
    if train and d.world > 1:
        sampler = DistributedSampler(ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.seed, drop_last=True)
    elif not train and d.world > 1:
        ds = Subset(ds, list(range(d.rank, len(ds), d.world)))  # each val image exactly once over all ranks
    workers = max(0, config.workers)
    loader = DataLoader(
        ds,
        batch_size=config.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        # fresh workers every epoch, seeded from the main torch RNG that last.pt saves: a resumed run
        # augments exactly as the uninterrupted one (persistent workers carry RNG state no file holds)
        persistent_workers=False,
        worker_init_fn=seed_worker if workers > 0 else None,
        pin_memory=d.device.type == "cuda",
        drop_last=train,  # BatchNorm dislikes a last batch of one
    )
    return loader, sampler


# --- one epoch -----------------------------------------------------------------------------------


def _train_epoch(model, loader, criterion, optimizer, scheduler, config, d, epoch, teacher=None) -> float:
    model.train()
    total = torch.zeros(2, dtype=torch.float64, device=d.device)  # (loss sum, batches); summed without syncing
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{config.epochs} train",
        disable=not (d.main and config.progress),
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        leave=False,
        dynamic_ncols=True,
    )
    for step, (x, y) in enumerate(bar):
        x = x.to(d.device, non_blocking=True)
        y = y.to(d.device, non_blocking=True)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss = criterion(logits, y) if teacher is None else criterion(logits, y, teacher(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None and config.scheduler != "plateau":
            scheduler.step()
        total[0] += loss.detach().double()
        total[1] += 1
        if d.main and step % 10 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{total[0].item() / total[1].item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    _all_reduce(total, d)
    return float(total[0] / total[1].clamp_min(1))


@torch.no_grad()
def _validate(model, loader, criterion, config, d, epoch) -> tuple[SegmentationScores, float]:
    model.eval()
    meter = ConfusionMeter(NUM_CLASSES)
    total = torch.zeros(2, dtype=torch.float64, device=d.device)
    bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs} val", disable=not (d.main and config.progress), leave=False)
    for x, y in bar:
        x, y = x.to(d.device), y.to(d.device)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        total[0] += criterion(logits, y).double() * x.shape[0]
        total[1] += x.shape[0]
        meter.update(y.cpu().numpy(), logits.argmax(1).cpu().numpy())
    confusion = _all_reduce(torch.from_numpy(meter.confusion).to(d.device), d).cpu().numpy()
    meter.confusion = confusion
    _all_reduce(total, d)
    return meter.scores(), float(total[0] / total[1].clamp_min(1))


# --- outputs -------------------------------------------------------------------------------------


def _history_row(epoch, train_loss, val_loss, lr, scores: SegmentationScores, seconds) -> dict:
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "lr": lr,
        "val_macro_iou": scores.macro_iou,
        "val_macro_f1": scores.macro_f1,
        "val_macro_iou_no_bg": scores.macro_iou_no_bg,
        "val_macro_f1_no_bg": scores.macro_f1_no_bg,
        "val_pixel_accuracy": scores.pixel_accuracy,
        "seconds": seconds,
    }
    for i, name in enumerate(CLASSES):
        row[f"iou_{name}"] = None if math.isnan(scores.iou[i]) else float(scores.iou[i])
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def write_metrics_csv(history: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0].keys()))
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    write_bytes_atomic(path, buf.getvalue().encode())


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    nan = float("nan")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
    axes[0].set(title="loss", xlabel="epoch")
    for key, label in (
        ("val_macro_iou_no_bg", "macro IoU (no bg)"),
        ("val_macro_f1_no_bg", "macro F1 (no bg)"),
        ("val_macro_iou", "macro IoU"),
    ):
        axes[1].plot(epochs, [r[key] if r[key] is not None else nan for r in history], "o-", label=label)
    axes[1].set(title="validation", xlabel="epoch")
    axes[2].plot(epochs, [r["lr"] for r in history], "o-")
    axes[2].set(title="learning rate (end of epoch)", xlabel="epoch", yscale="log")
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


# --- the loop ------------------------------------------------------------------------------------


def _check_options(config: TrainConfig) -> None:
    """Options that would crash or mislead later, refused before any data is read or folder written."""
    if config.epochs is not None and config.epochs < 1:
        raise TrainingError(f"--epochs must be at least 1, not {config.epochs}")
    try:  # a misspelt loss fails here
        build_loss(config.loss, None, **config.loss_kwargs)
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"--loss {config.loss}: {exc}") from None
    try:
        if config.threads is not None:
            check_threads(config.threads)  # torch segfaults on 100000 and raises on -1
        if config.size is not None:
            check_size(config.size)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    for name, value in config.class_weight.items():
        if name not in CLASSES:
            raise TrainingError(f"--class-weight {name}={value}: no class {name!r}; classes: {', '.join(CLASSES)}")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise TrainingError(f"--class-weight {name}={value}: the weight must be a finite number >= 0")
    if config.batch_size < 1:
        raise TrainingError(f"--batch-size must be at least 1, not {config.batch_size}")
    if config.workers < 0:
        raise TrainingError(f"--workers must be 0 or more, not {config.workers}")
    if (config.unlabelled or config.teacher_beard) and not config.teacher:
        raise TrainingError("--unlabelled and --teacher-beard need --teacher: unlabelled faces teach only through a "
                            "teacher's scores")
    try:
        DistillLoss(nn.Identity(), config.distill_temperature, config.distill_weight)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _partial_labels(parts: list[FaceParsingDataset], config: TrainConfig, d: _Dist) -> tuple[list, dict]:
    """The training sets, with set-valued labels where a set never labels a class that another set does
    (CelebAMask's face may be beard once FaceSynthetics brings beard; see partial.py), and the codes' sets."""
    hidden = {h for ds in parts for it in ds.manifest["items"] if it.get("split") == "train" for h in item_unlabelled(it)}
    active = hidden & labelled_classes(ds.manifest for ds in parts)
    if not active:
        return parts, {}
    try:
        check_loss(config.loss)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    codes = PartialCodes(active)
    wrapped = [PartialLabels(ds, codes) for ds in parts]
    if d.main:
        shown = ", ".join(f"{ds.dataset.root}: {ds.partial_samples} of {len(ds)}" for ds in wrapped if ds.partial_samples)
        print(f"partial labels for {', '.join(sorted(active))} (unlabelled in some sets, labelled in others): {shown}",
              flush=True)
    return wrapped, codes.sets


def _load_encoder(model: nn.Module, path: str) -> int:
    """The encoder half of another checkpoint (e.g. a student over the teacher's face-trained encoder)."""
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as exc:
        raise TrainingError(f"--init-encoder: {exc}") from None
    encoder = getattr(model, "encoder", None)
    weights = {k[len("encoder."):]: v.float() if v.is_floating_point() else v
               for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    if encoder is None or not weights:
        raise TrainingError(f"--init-encoder {path}: {'this model has' if encoder is None else 'that checkpoint has'} "
                            "no `encoder`")
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as exc:
        raise TrainingError(f"--init-encoder {path}: its {ckpt['model']['name']} encoder does not fit this model's "
                            f"({' '.join(str(exc).split())[:160]})") from None
    return len(weights)


def _data_fingerprint(manifest: dict) -> str:
    """Which faces, in which split, at which size: what a resumed run must train on again."""
    items = sorted((it["name"], it.get("split")) for it in manifest["items"])
    return hashlib.sha1(json.dumps([manifest["size"], items]).encode()).hexdigest()[:16]


def _check_room(out: Path, model: nn.Module, optimizer_name: str) -> None:
    """Refuse a run folder without room for its checkpoints now, not with a traceback after epoch 1."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    states = 1 if optimizer_name == "sgd" else 2  # momentum, or Adam's two moments
    # last.pt (weights + optimizer state), best.pt, and the temp copy of last.pt while it is replaced
    needed = weights * (2 * (1 + states) + 1) + (4 << 20)
    free = shutil.disk_usage(out).free
    if free < needed:
        raise TrainingError(f"--out {out}: only {free / 1e6:.1f} MB free on its disk, and this run needs about "
                            f"{needed / 1e6:.0f} MB for last.pt and best.pt; free some space or choose another --out")


def _save(ckpt: dict, path: Path, epoch: int) -> None:
    """save_checkpoint, with a full disk (torch raises RuntimeError) as a TrainingError naming the file."""
    try:
        save_checkpoint(ckpt, path)
    except (RuntimeError, OSError) as exc:
        free = shutil.disk_usage(path.parent).free / 1e6
        kept = f"; {path.parent / 'last.pt'} still holds the epoch before" if (path.parent / "last.pt").exists() else ""
        raise TrainingError(f"cannot write {path} after epoch {epoch} ({free:.1f} MB free on its disk: "
                            f"{' '.join(str(exc).split())[:120]}){kept}; free some space and rerun with --resume") from None


RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "curves.png")  # what a run writes into --out


def train(config: TrainConfig) -> TrainResult:
    """Train per config; see the module docstring. Returns where the checkpoints are and the history."""
    out = Path(config.out)
    _check_options(config)
    check_writable_dir(out, "--out")  # before the data is read, not at the end of epoch 1
    if config.init and config.init_encoder:
        raise TrainingError("--init and --init-encoder both set the weights; give one")
    check_apart({"--out": out}, {"--data": config.data, "--extra-train": config.extra_train, "--init": config.init,
                                 "--init-encoder": config.init_encoder,
                                 "--teacher": config.teacher, "--teacher-beard": config.teacher_beard,
                                 "--unlabelled": config.unlabelled})
    if is_prepared_set(out):  # checkpoints and curves would mix with a data set's files
        raise TrainingError(f"--out {out}: is a prepared data set, not a run folder; choose another --out")
    # one run per folder (rank 0 holds it under torchrun): two runs would overwrite each other's best.pt
    main = int(os.environ.get("RANK", "0")) == 0
    lock = run_lock(out) if main else nullcontext()
    try:
        with lock:
            if main:  # we hold the folder: a temp checkpoint in it is a killed run's, never a live writer's
                for stale in remove_stale_temps(out, RUN_FILES):
                    print(f"removed {stale}, left half-written by a killed run", flush=True)
            return _train(config, out)
    except RunLockedError as exc:
        raise TrainingError(str(exc)) from None


def _train(config: TrainConfig, out: Path) -> TrainResult:
    config, resume_ckpt = _resolve_config(config, out)
    d = _setup_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + d.rank)
    np.random.seed(config.seed + d.rank)
    random.seed(config.seed + d.rank)

    manifest = load_prepared(config.data)
    fingerprint = _data_fingerprint(manifest)
    if resume_ckpt is not None and resume_ckpt.get("data_fingerprint", fingerprint) != fingerprint:
        trained_on = resume_ckpt.get("train_config", {}).get("data")
        raise TrainingError(f"--data {config.data} is not the set this run was trained on ({trained_on}: other faces "
                            f"or another size); resume with --data {trained_on}, or start a new run in another --out")
    size = int(config.size or manifest["size"])
    try:
        check_size(size, "--size" if config.size else f"{config.data}'s prepared size; --size")
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    weights = loss_weights(manifest, config.weights)
    for name, value in config.class_weight.items():  # checked in _check_options
        weights[CLASSES.index(name)] = float(value)
    augment = build_augmentation(config.augment, config.seed + d.rank)
    # extra sets, e.g. pseudo-labelled faces: their ignore pixels (255) drop out of the loss like any other
    train_parts = [FaceParsingDataset(p, "train", augment, size) for p in [config.data, *config.extra_train]]
    train_parts, partial_sets = _partial_labels(train_parts, config, d)
    teacher, unlabelled = None, None
    if config.teacher:
        try:
            teacher = Teacher(config.teacher, config.teacher_beard, config.teacher_flip).to(d.device)
            unlabelled = UnlabelledFaces(config.unlabelled, size, augment) if config.unlabelled else None
        except (ValueError, CheckpointError, OSError) as exc:
            raise TrainingError(f"--teacher / --unlabelled: {exc}") from None
        if unlabelled is not None:
            train_parts = [*train_parts, unlabelled]
    train_ds = ConcatDataset(train_parts) if len(train_parts) > 1 else train_parts[0]
    val_ds = FaceParsingDataset(config.data, "val", None, size)
    train_loader, sampler = _loader(train_ds, config, d, train=True)
    val_loader, _ = _loader(val_ds, config, d, train=False)
    if len(train_loader) == 0:
        raise TrainingError(f"{config.data}: {len(train_ds)} training images, fewer than one batch of {config.batch_size}")

    model = create_model(config.model, num_classes=NUM_CLASSES, **config.model_kwargs)
    if config.pretrained is None:
        config = replace(config, pretrained="imagenet" if supports_imagenet(model) else "none")
    if config.pretrained not in ("imagenet", "none"):
        raise TrainingError(f"--pretrained must be imagenet or none, got {config.pretrained!r}")
    if config.init and resume_ckpt is None:
        try:
            init_ckpt = read_checkpoint(config.init)
        except CheckpointError as exc:
            raise TrainingError(f"--init: {exc}") from None
        if init_ckpt["model"]["name"] != config.model:
            raise TrainingError(f"{config.init} holds a {init_ckpt['model']['name']}, not a {config.model}")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in init_ckpt["state_dict"].items()})
        if d.main:
            print(f"initialised from {config.init} (its own init: {init_ckpt.get('train_config', {}).get('pretrained')})", flush=True)
    elif config.init_encoder and resume_ckpt is None:
        loaded = _load_encoder(model, config.init_encoder)
        if d.main:
            print(f"encoder initialised from {config.init_encoder} ({loaded} tensors); the decoder starts fresh", flush=True)
    elif config.pretrained == "imagenet" and resume_ckpt is None:
        try:
            loaded = load_imagenet_into(model)
        except PretrainedWeightsError as exc:
            raise TrainingError(str(exc)) from None
        if d.main:
            print(f"ImageNet init: {loaded['loaded']} encoder tensors loaded, {loaded['dropped_head']} classifier tensors dropped", flush=True)
    model = model.to(d.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_loss(config.loss, weights, **config.loss_kwargs)
    if partial_sets:
        criterion = PartialLabelLoss(criterion, partial_sets)
    criterion = criterion.to(d.device)
    train_criterion, distillation = criterion, None
    if teacher is not None:  # the val loss stays the plain loss, comparable with runs without a teacher
        train_criterion = DistillLoss(criterion, config.distill_temperature, config.distill_weight)
        distillation = recipe(teacher, train_criterion, config.unlabelled, len(unlabelled) if unlabelled else 0)
    optimizer = build_optimizer(config.optimizer, model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if d.main:
        _check_room(out, model, config.optimizer)
    scheduler = _build_scheduler(config, optimizer, len(train_loader))

    start_epoch, history = 0, []
    best_metric, best_epoch, bad_epochs = -math.inf, 0, 0
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt["state_dict"])
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        if scheduler is not None and resume_ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(resume_ckpt["scheduler"])
        start_epoch = int(resume_ckpt["epoch"])
        history = list(resume_ckpt.get("history", []))
        best_metric = float(resume_ckpt.get("best_metric", -math.inf))
        best_epoch = int(resume_ckpt.get("best_epoch", 0))
        bad_epochs = int(resume_ckpt.get("bad_epochs", 0))
        if "rng" in resume_ckpt:
            _set_rng_state(resume_ckpt["rng"])
        if d.main:
            print(f"resuming {out} after epoch {start_epoch} (best val macro F1 no-bg {best_metric:.4f} at epoch {best_epoch})", flush=True)
    elif d.main:
        out.mkdir(parents=True, exist_ok=True)

    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)

    contract = {**DEFAULT_INPUT, "size": size}
    run_config = asdict(config)
    stopped_early = False
    if d.main:
        overrides = "".join(f", {name} {value:g}" for name, value in config.class_weight.items())
        print(
            f"training {config.model} on {len(train_ds)} train / {len(val_ds)} val images at {size}px, "
            f"{config.loss} loss ({config.weights} weights{overrides}), {config.optimizer} lr {config.lr}, {config.scheduler}, "
            f"{d.world} process(es) on {d.device}, {torch.get_num_threads()} threads",
            flush=True,
        )
    if d.main and distillation:
        print(f"distilling from {' + '.join(config.teacher)}"
              f"{' (beard split: ' + config.teacher_beard + ')' if config.teacher_beard else ''}, "
              f"T {config.distill_temperature:g}, soft weight {config.distill_weight:g}, "
              f"{distillation['unlabelled_images']} unlabelled faces", flush=True)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if config.patience and bad_epochs >= config.patience:
            stopped_early = True
            break
        t0 = time.time()
        if sampler is not None:
            sampler.set_epoch(epoch)
        if hasattr(augment, "set_random_seed"):  # workers=0: augment here, from the saved torch RNG, as workers do
            augment.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        train_loss = _train_epoch(net, train_loader, train_criterion, optimizer, scheduler, config, d, epoch, teacher)
        scores, val_loss = _validate(net, val_loader, criterion, config, d, epoch)
        metric = scores.macro_f1_no_bg
        lr = optimizer.param_groups[0]["lr"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metric)
        history.append(_history_row(epoch, train_loss, val_loss, lr, scores, time.time() - t0))
        improved = metric > best_metric + 1e-6
        if improved:
            best_metric, best_epoch, bad_epochs = metric, epoch, 0
        else:
            bad_epochs += 1
        if d.main:
            common: dict[str, Any] = dict(
                model_name=config.model,
                model_kwargs=config.model_kwargs,
                input_contract=contract,
                metrics=scores.as_dict(),
                train_config=run_config,
                epoch=epoch,
                history=history,
                **({"distillation": distillation} if distillation else {}),
            )
            if improved:
                _save(make_checkpoint(model, **common), out / "best.pt", epoch)
            state = dict(
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler is not None else None,
                best_metric=best_metric,
                best_epoch=best_epoch,
                bad_epochs=bad_epochs,
                rng=_rng_state(),
                data_fingerprint=fingerprint,
            )
            _save(make_checkpoint(model, **common, **state), out / "last.pt", epoch)
            write_metrics_csv(history, out / "metrics.csv")
            plot_curves(history, out / "curves.png", title=f"{config.model} / {config.loss} / {config.weights}")
            print(
                f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
                f"macro IoU/F1 no-bg {scores.macro_iou_no_bg:.4f}/{metric:.4f}  lr {lr:.2e}  "
                f"{time.time() - t0:.0f}s{'  *best' if improved else ''}",
                flush=True,
            )
    if d.main and stopped_early:
        print(f"early stop: no val macro F1 (no bg) gain for {config.patience} epochs", flush=True)
    if d.world > 1:
        dist.barrier()
    return TrainResult(
        out=out,
        best_path=out / "best.pt",
        last_path=out / "last.pt",
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_metric=best_metric,
        history=history,
        stopped_early=stopped_early,
    )
