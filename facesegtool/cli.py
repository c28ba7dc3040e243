"""The `facesegtool` command line. Thin: each command parses options and calls one library function.

Data flows one way: data prepare -> train -> export -> verify / bench / predict.
"""

from __future__ import annotations

import sys

import click

EPILOG = """\b
Examples:
  facesegtool data prepare --celebamask ../shared/data/celebamask-mini --size 256 --out prepared/celeba256
  facesegtool train --model unet-mobilenetv3-small --data prepared/celeba256 --epochs 20
  facesegtool export --quant int8
  facesegtool verify
  facesegtool bench --device host
  facesegtool bench --device adb --benchmark-binary ./benchmark_model
  facesegtool predict photo.jpg --face-crop --effect hair=#8040C0
  facesegtool sweep models/sweeps/weights.yaml --out runs/sweep-weights
"""


class _Tool(click.Group):
    """The top-level group, where every command's errors are caught once (the rule: facesegtool/errors.py).

    A FacesegError, or an OSError naming a file the user gave, is one `error:` line and exit status 2;
    anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: click.Context):
        from .errors import FacesegError

        try:
            return super().invoke(ctx)
        except FacesegError as exc:
            fail(str(exc))
        except OSError as exc:
            if exc.filename is None:  # not a path the user gave: a bug or the system's, with its traceback
                raise
            fail(f"{exc.filename}: {exc.strerror or exc}; check the path and its permissions")


@click.group(cls=_Tool, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="facesegtool")
def main() -> None:
    """Face parsing from PyTorch to an Android phone: prepare data, train, export to TFLite,
    verify what quantization cost, benchmark on host and device."""


def fail(*messages: str) -> None:
    """Print each message as a clear `error:` line (no traceback) and exit with status 2."""
    _close_progress_bars()
    for message in messages:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def _close_progress_bars() -> None:
    """An error raised inside a loop leaves its tqdm bar open: close it, so the error gets a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


MODEL_HELP = (
    "The model: a facesegtool checkpoint, a torch.export .pt2, TorchScript, an .onnx file, or CODE.py:FUNCTION "
    "(your code builds the nn.Module and runs here, as you asked; its state_dict comes from --weights) "
    "[default: {default}]. --checkpoint is an alias.")


def model_options(default: str = "the shipped model, models/default/model.pt or $FACESEGTOOL_MODEL"):
    """--model/--checkpoint, --spec, --weights: a model from any source (model_source.load_source)."""

    def decorate(command):
        command = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                               help="With --model CODE.py:FUNCTION: its state_dict (read with weights_only=True).")(command)
        command = click.option("--spec", type=click.Path(dir_okay=False), default=None,
                               help="The model's contract (YAML): labels or preset (celebamask19, lapa11, "
                                    "facesegtool11), input size/mean/std/channel order, output layout/kind/select, "
                                    "mapping onto our classes. Silent parts are inferred and said.")(command)
        return click.option("--model", "--checkpoint", "checkpoint", default=None, metavar="FILE",
                            help=MODEL_HELP.format(default=default))(command)

    return decorate


# --- data: prepare / stats -------------------------------------------------------------------


@main.group()
def data() -> None:
    """Prepare face-parsing datasets (11 classes) and look at their class frequencies."""


@data.command("carve")
@click.argument("prepared", type=click.Path(file_okay=False))
@click.option("--holdout", type=int, default=80, show_default=True, help="Train faces moved to the dev split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="The carved set (links to PREPARED).")
def data_carve(prepared, holdout, seed, out) -> None:
    """Carve a dev split from train (the set's val faces are left out), to choose recipes without val.

    \b
    Example:
      facesegtool data carve prepared/celeba256 --holdout 80 --out prepared/celeba256-dev
    """
    from .data.carve import carve_dev_split

    manifest = carve_dev_split(prepared, out, holdout, seed)
    n = {s: sum(it["split"] == s for it in manifest["items"]) for s in ("train", "val")}
    click.echo(f"wrote {out}: {n['train']} train / {n['val']} dev (as its val split); {prepared}'s val faces left out")


def source_options(command):
    """One repeatable --KIND DIR option per data-source kind of the registry (data/registry.py)."""
    from .data.registry import SOURCE_KINDS

    for kind in reversed(SOURCE_KINDS):
        command = click.option(kind.option, kind.key, multiple=True, type=click.Path(file_okay=False),
                               help=kind.help)(command)
    return command


@data.command("prepare")
@source_options
@click.option("--mapping", type=click.Path(dir_okay=False), default=None,
              help="JSON {part: class} overriding the CelebAMask part -> class mapping.")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True, help="Output side in pixels.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Prepared dataset folder.")
@click.option("--skip-bad", is_flag=True, help="Skip bad samples (listed in manifest.json) instead of stopping.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of val (hash of subject or file name) for sources without train.txt/val.txt.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=None,
              help="Mut1ny: max RGB distance that snaps an off-palette pixel; farther is ignored [default: 40].")
def data_prepare(mapping, size, out, skip_bad, val_fraction, tolerance, **dirs) -> None:
    """Turn face-parsing sources into one resized 11-class set with a manifest.

    \b
    Example:
      facesegtool data prepare --celebamask ../shared/data/celebamask-mini --size 256 --out prepared/celeba256
    """
    import time

    from .data.registry import prepare_from_dirs
    from .data.stats import frequency_table

    started = time.perf_counter()
    manifest = prepare_from_dirs(dirs, out, mapping=mapping, tolerance=tolerance, size=size, skip_bad=skip_bad,
                                 val_fraction=val_fraction)
    splits = [item["split"] for item in manifest["items"]]
    click.echo(frequency_table(manifest))
    for source in manifest["sources"]:
        if source["counters"]:
            click.echo(f"{source['kind']} {source['root']}: {source['counters']}")
    click.echo(
        f"wrote {out}: {splits.count('train')} train + {splits.count('val')} val at {size}px, "
        f"{len(manifest['skipped'])} skipped, in {time.perf_counter() - started:.1f} s"
    )
    for bad in manifest["skipped"]:
        click.echo(f"  skipped {bad['file']}: {bad['reason']}")
    _warn_size(size)


def _warn_size(size: int) -> None:
    from .data.prepare import size_warning

    if size_warning(size):
        click.secho(f"warning: {size_warning(size)}", fg="yellow", err=True)


@data.command("stats")
@click.argument("prepared_dir", type=click.Path(file_okay=False))
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Bar chart file [default: PREPARED_DIR/class_frequencies.png].")
def data_stats(prepared_dir, png) -> None:
    """Print the class-frequency table and weights of a prepared set; write a bar chart PNG.

    \b
    Example:
      facesegtool data stats prepared/celeba256 --png freq.png
    """
    from .data.stats import frequency_table, write_frequency_chart

    manifest, png = write_frequency_chart(prepared_dir, png)
    click.echo(frequency_table(manifest))
    click.echo(f"bar chart: {png}")


# --- models / train / eval -------------------------------------------------------------------


@main.command("models")
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True,
              help="Input side for the MACs column.")
@click.option("--no-macs", is_flag=True, help="Skip the MACs column (it runs one forward pass per model).")
@click.option("--classes", "num_classes", type=click.IntRange(min=1), default=11, show_default=True)
def models_cmd(size, no_macs, num_classes) -> None:
    """List the registered models with parameter counts and MACs.

    \b
    Every model takes activation=hardswish|relu (train --activation relu): relu swaps
    hard-swish/hard-sigmoid for ReLU/sigmoid, which quantize better to int8.
    """
    from .models.summary import model_table

    rows = model_table(num_classes, None if no_macs else size)
    click.echo(f"{'model':<24} {'params':>8} {'activation':>10}" + ("" if no_macs else f" {f'GMACs@{size}':>11}"))
    for r in rows:
        line = f"{r['name']:<24} {r['params'] / 1e6:>7.2f}M {r['activation'] or '-':>10}"
        if not no_macs:
            line += f" {r['macs'] / 1e9:>11.2f}"
        click.echo(line)


def _key_values(pairs: tuple[str, ...], option: str) -> dict:
    """KEY=VALUE options -> dict; values parsed as Python literals (numbers, True, None) else strings."""
    import ast

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


@main.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(), help="Prepared dataset dir (data prepare --out).")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Run dir: best.pt, last.pt, metrics.csv, curves.png.")
@click.option("--model", default="unet-mobilenetv3-small", show_default=True, help="Registry name (facesegtool models).")
@click.option("--loss", default="ce", show_default=True,
              help="ce, bce, dice, focal, tversky, bias, or a sum of them such as ce+dice.")
@click.option("--weights", type=click.Choice(["equal", "empirical", "proportional"]), default="equal", show_default=True, help="Class weight scheme from the manifest.")
@click.option("--class-weight", "class_weight", multiple=True, metavar="CLASS=WEIGHT",
              help="One class's weight over the scheme's, e.g. beard=10 for a class only a small added set labels (repeatable).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "adamp", "adabelief", "sgd"]), default="adam", show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate (peak LR for onecycle).")
@click.option("--weight-decay", type=float, default=None, help="Default: 1e-2 for adamw/adamp, else 0.")
@click.option("--epochs", type=int, default=None, help="Epochs in total [default: 20; on --resume the run's own].")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--size", type=int, default=None, help="Train/val side in px [default: the prepared size].")
@click.option("--scheduler", type=click.Choice(["plateau", "onecycle", "cosine", "none"]), default="plateau", show_default=True)
@click.option("--patience", type=int, default=3, show_default=True, help="Early stop after N epochs without val macro F1 (no bg) gain; 0 = off.")
@click.option("--augment", type=click.Choice(["none", "light", "strong"]), default="light", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--activation", default=None, help="Model activation (passed to the model as activation=...).")
@click.option("--model-arg", multiple=True, metavar="KEY=VALUE", help="Extra model constructor argument (repeatable).")
@click.option("--loss-arg", multiple=True, metavar="KEY=VALUE", help="Loss option, e.g. gamma=2 (focal), alpha=0.3 beta=0.7 (tversky).")
@click.option("--channels-last", is_flag=True, help="channels_last memory format (can be faster on CPU).")
@click.option("--workers", type=int, default=1, show_default=True, help="DataLoader worker processes.")
@click.option("--threads", type=int, default=None, help="torch intra-op threads [default: torch's].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt (its recipe; fresh start if none).")
@click.option("--pretrained", type=click.Choice(["imagenet", "none"]), default=None,
              help="Encoder init [default: imagenet where the model has ImageNet weights, else none].")
@click.option("--extra-train", multiple=True, type=click.Path(), metavar="DIR",
              help="Another prepared dir whose train items join training, e.g. from `pseudo-label` (repeatable).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from this checkpoint's weights (same model), e.g. to fine-tune a teacher on pseudo-labels.")
@click.option("--init-encoder", type=click.Path(dir_okay=False), default=None, metavar="CHECKPOINT",
              help="Encoder weights from another checkpoint over the same encoder (e.g. a student from its teacher's).")
@click.option("--teacher", multiple=True, type=click.Path(dir_okay=False), metavar="MODEL",
              help="Distil: the student also learns this model's soft scores (repeatable: an averaged ensemble).")
@click.option("--teacher-beard", type=click.Path(dir_okay=False), default=None, metavar="MODEL",
              help="A beard-aware teacher that splits the ensemble's face + beard probability.")
@click.option("--teacher-flip/--no-teacher-flip", default=True, show_default=True,
              help="Average each teacher with its mirrored pass.")
@click.option("--distill-temperature", type=float, default=2.0, show_default=True)
@click.option("--distill-weight", type=float, default=0.7, show_default=True,
              help="Share of the teacher's term in the loss; the rest is --loss on the labels.")
@click.option("--unlabelled", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder of unlabelled face crops, taught by --teacher only (repeatable).")
def train_cmd(data_dir, out_dir, model, loss, weights, optimizer, lr, weight_decay, epochs, batch_size, size, scheduler,
              patience, augment, seed, activation, model_arg, loss_arg, channels_last, workers, threads, device, resume,
              pretrained, extra_train, init, class_weight, teacher, teacher_beard, teacher_flip, distill_temperature,
              distill_weight, unlabelled, init_encoder) -> None:
    """Train a segmentation model on a prepared dataset (resumable; DDP under torchrun).

    \b
    Example:
      facesegtool train --model regseg --loss focal --weights proportional --optimizer adam \\
        --epochs 20 --batch-size 8 --size 256 --data prepared/celeba256 --out runs/regseg
      torchrun --nproc_per_node 2 -m facesegtool.cli train ...   # DistributedDataParallel
    """
    from .training.loop import TrainConfig, train

    model_kwargs = _key_values(model_arg, "--model-arg")
    if activation is not None:
        model_kwargs["activation"] = activation
    config = TrainConfig(
        data=data_dir, out=out_dir, model=model, model_kwargs=model_kwargs, loss=loss, loss_kwargs=_key_values(loss_arg, "--loss-arg"),
        weights=weights, optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
        size=size, scheduler=scheduler, patience=patience, augment=augment, seed=seed, channels_last=channels_last,
        workers=workers, threads=threads, device=device, resume=resume, pretrained=pretrained, extra_train=list(extra_train), init=init,
        class_weight=_key_values(class_weight, "--class-weight"), teacher=list(teacher), teacher_beard=teacher_beard,
        teacher_flip=teacher_flip, distill_temperature=distill_temperature, distill_weight=distill_weight,
        unlabelled=list(unlabelled), init_encoder=init_encoder,
    )
    result = train(config)
    click.echo(
        f"best val macro F1 (no bg) {result.best_metric:.4f} at epoch {result.best_epoch} of {result.epochs_run}"
        f"{' (early stop)' if result.stopped_early else ''}; checkpoints: {result.best_path}, {result.last_path}"
    )


@main.command("pseudo-label")
@click.option("--model", "--checkpoint", "checkpoints", required=True, multiple=True, metavar="FILE",
              help="The teacher: any model --model takes elsewhere (checkpoint, .pt2, TorchScript, .onnx); repeat it "
                   "for an ensemble teacher (probabilities averaged in our classes).")
@click.option("--spec", type=click.Path(dir_okay=False), default=None,
              help="The teachers' contract (YAML), with the mapping of their labels onto our classes.")
@click.option("--images", "image_dirs", required=True, multiple=True, type=click.Path(file_okay=False),
              help="Folder of unlabelled face crops (repeatable).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Prepared set to write (all train).")
@click.option("--size", type=click.IntRange(min=8), default=None, help="Side in px [default: the teacher's input size].")
@click.option("--threshold", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True,
              help="Keep a pixel when the teacher's top probability reaches this; the rest is ignore (255).")
@click.option("--flip/--no-flip", default=True, show_default=True, help="Average with the mirrored pass.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images.")
def pseudo_label_cmd(checkpoints, spec, image_dirs, out, size, threshold, flip, limit) -> None:
    """Label unlabelled faces with a teacher for self-training (`train --extra-train OUT`).

    \b
    Example:
      facesegtool pseudo-label --checkpoint runs/teacher/last.pt \\
        --images ../shared/data/faces-unlabelled/celebahq-2 --out prepared/pseudo256
    """
    from .data.pseudo_label import pseudo_label

    summary = pseudo_label(checkpoints, image_dirs, out, size=size, threshold=threshold, flip=flip, limit=limit,
                           spec=spec)
    for item in summary.skipped:
        click.echo(f"skipped {item['file']}: {item['reason']}", err=True)
    per_class = ", ".join(f"{c} {v:.2f}" for c, v in summary.kept_by_class.items())
    click.echo(f"wrote {summary.out}: {summary.images} faces, {summary.kept_fraction:.1%} of pixels kept (by class: {per_class})")
    if summary.warning:
        click.secho(f"warning: {summary.warning}", fg="yellow", err=True)
    _warn_size(summary.size)


@main.command("eval")
@model_options()
@click.option("--data", "data_dir", required=True, type=click.Path(), help="Prepared dataset dir.")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True)
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Report dir [default: CHECKPOINT_DIR/eval-SPLIT; for the shipped model ./eval/default-SPLIT].")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--overlays", type=int, default=8, show_default=True, help="Faces on the overlay sheet.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads for the latency measurement.")
@click.option("--latency-runs", type=int, default=50, show_default=True)
def eval_cmd(checkpoint, spec, weights, data_dir, split, out_dir, batch_size, overlays, threads, latency_runs) -> None:
    """Score a checkpoint: per-class IoU/F1, confusion matrix, overlay sheet, CPU latency.

    \b
    Example:
      facesegtool eval --checkpoint runs/regseg/best.pt --data prepared/celeba256
    """
    from .training.evaluate import evaluate

    result = evaluate(checkpoint, data_dir, split=split, out=out_dir, batch_size=batch_size, overlays=overlays,
                      threads=threads, latency_runs=latency_runs, spec=spec, weights=weights)
    click.echo(result.files["table"].read_text(), nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in result.files.values()))


# --- export / calibration --------------------------------------------------------------------


@main.command("export")
@model_options()
@click.option("--quant", default="int8", show_default=True, metavar="fp32|fp16|dynamic|int8|all",
              help="TFLite variant(s) to write; comma-separated for several.")
@click.option("--calibration", "calibration_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of face crops to calibrate int8 on [default: the repo's calibration/].")
@click.option("--num-calib", type=click.IntRange(min=1), default=100, show_default=True,
              help="Calibration images to use at most (spread evenly over the folder).")
@click.option("--size", type=click.IntRange(min=32), default=None,
              help="Input side in pixels, a multiple of 32 [default: the checkpoint's training size].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: exports/default for the shipped model, else exports/<model>].")
@click.option("--per-tensor", is_flag=True, help="int8/dynamic: one weight scale per tensor, not per channel.")
@click.option("--io-dtype", type=click.Choice(["int8", "uint8", "float32"]), default=None,
              help="int8 model's input/output type [default: uint8 when the normalisation is baked in, else "
                   "float32: what MediaPipe and the LiteRT support library take; int8 input they refuse].")
@click.option("--bake-normalization/--no-bake-normalization", default=None,
              help="The model takes RGB 0..255 and normalises (and flips BGR) inside, so runtimes feed camera "
                   "bytes as they are [default: on].")
@click.option("--int16-activations", is_flag=True,
              help="int8 with 16-bit activations (int16x8): more accurate, slower; int16 I/O.")
@click.option("--float-layer", "float_layers", multiple=True, metavar="TENSOR",
              help="Keep this layer of the int8 model in float (a tensor name `facesegtool verify` reports; repeatable).")
@click.option("--opset", type=click.IntRange(17, 20), default=17, show_default=True, help="ONNX opset.")
@click.option("--resize-output", is_flag=True,
              help="Bake a bilinear upsample of a lower-resolution output (1/4, 1/8) to the input size into the graph.")
@click.option("--replace", is_flag=True, help="Remove another model's exports found in --out instead of refusing.")
@click.option("--converter", type=click.Choice(["onnx2tf", "litert-torch", "auto"]), default="onnx2tf",
              show_default=True,
              help="TFLite converter: onnx2tf (via ONNX), litert-torch (from torch.export; its own venv, "
                   "`make litert`), or auto (both, each judged against torch; exactness first, then latency, ops).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary (files, sizes, seconds) as JSON here.")
def export_cmd(checkpoint, spec, weights, quant, calibration_dir, num_calib, size, out_dir, per_tensor, io_dtype,
               bake_normalization, int16_activations, float_layers, opset, resize_output, replace, converter,
               json_path) -> None:
    """Export a checkpoint to ONNX and TFLite (fp32, fp16, dynamic-range, full-integer int8).

    Each .tflite gets a sidecar JSON (labels, palette, input contract, NHWC layout, quantization of
    input and output) that verify, bench, predict and the Android app read. Works offline.

    \b
    Examples:
      facesegtool export --quant int8
      facesegtool export --quant all --checkpoint runs/exp1/best.pt --out exports/exp1
      facesegtool export --quant int8 --io-dtype int8     # int8 in and out (our app only; MediaPipe refuses it)
      facesegtool export --quant int8 --calibration my_faces --per-tensor
      facesegtool export --model parser.pt2 --spec parser.yaml --quant fp32,int8 --out exports/parser
      facesegtool export --model my_parser.py:build_model --weights w.pt --spec parser.yaml --resize-output
      facesegtool export --model segformer.pt2 --spec segformer.yaml --converter auto
    """
    import json as jsonlib

    from .atomic import check_apart, model_file
    from .export import export

    if json_path:
        from pathlib import Path

        from .atomic import check_writable_dir

        check_writable_dir(Path(json_path).resolve().parent, "--json")  # before the export, not after it
        check_apart({"--json": json_path}, {"--model": model_file(checkpoint), "--spec": spec, "--weights": weights,
                                            "--calibration": calibration_dir})
        if Path(json_path).suffix.lower() != ".json" or _export_file_name(Path(json_path).name):
            fail(f"--json {json_path}: name it SUMMARY.json, not like an exported model or its sidecar "
                 "(NAME.tflite, NAME.onnx, NAME_<variant>.json), which it would overwrite")
    try:
        report = export(checkpoint=checkpoint, quant=quant, out_dir=out_dir,
                        calibration_dir=calibration_dir, num_calib=num_calib, size=size, per_channel=not per_tensor,
                        io_dtype=io_dtype, bake_normalization=bake_normalization,
                        int16_activations=int16_activations, float_layers=list(float_layers), opset=opset, spec=spec,
                        weights=weights, resize_output=resize_output, replace=replace, converter=converter)
    except KeyboardInterrupt:
        fail("interrupted; nothing was written to the output folder")
    click.echo(report.table())
    if json_path:
        from .atomic import write_bytes_atomic

        written = [report.onnx, *(f for v in report.variants.values() for f in (v.tflite, v.sidecar))]
        check_apart({"--json": json_path}, {"the export": written})  # never over a file just exported
        write_bytes_atomic(json_path, jsonlib.dumps(report.as_dict(), indent=1).encode())
    click.echo("next:\n" + "\n".join(f"  {cmd}" for cmd in report.next_commands()))


def _export_file_name(name: str) -> bool:
    """Whether a file name is one `export` writes (a model, or a sidecar NAME_<variant>.json)."""
    from .export.variants import FILE_SUFFIXES

    return name.endswith((".tflite", ".onnx")) or name.endswith(tuple(f"_{v}.json" for v in FILE_SUFFIXES))


@main.group("calibration")
def calibration_group() -> None:
    """int8 calibration face crops."""


@calibration_group.command("build")
@click.option("--from", "photos_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of ordinary photos with faces.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the crops.")
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="Crop side in pixels.")
@click.option("--margin", type=click.FloatRange(min=0), default=0.4, show_default=True,
              help="Extra context around each detected face, as a fraction of its box size, per side.")
@click.option("--max-faces", type=click.IntRange(min=1), default=4, show_default=True,
              help="Largest faces to keep per photo.")
@click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
def calibration_build_cmd(photos_dir, out_dir, size, margin, max_faces, image_format) -> None:
    """Detect faces in photos (OpenCV's bundled detector) and write square face crops for calibration.

    \b
    Example:
      facesegtool calibration build --from ../shared/data/faces-in-the-wild --out my_calibration
      facesegtool export --quant int8 --calibration my_calibration
    """
    from .export.calibration import build_calibration_set

    report = build_calibration_set(photos_dir, out_dir, size=size, margin=margin, max_faces_per_photo=max_faces,
                                   image_format=image_format)
    click.echo(report.summary())
    for name, reason in report.skipped:
        click.echo(f"  skipped {name}: {reason}")


# --- verify ----------------------------------------------------------------------------------


@main.command("verify")
@model_options("the one the models were exported from (their sidecars), else the shipped model; "
               "for an .onnx model ONNX Runtime is the reference")
@click.option("--tflite", "tflite", multiple=True, type=click.Path(dir_okay=False),
              help="A .tflite to verify, its sidecar JSON beside it (repeatable).")
@click.option("--export-dir", type=click.Path(file_okay=False), default=None,
              help="Verify every .tflite in this folder [default: exports/default].")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Prepared dir, images/ + masks/ (CelebAMask ids) folder, or plain images (agreement only) "
                   "[default: ../shared/data/celebamask-mini; without it the shipped calibration/ crops, agreement only].")
@click.option("--split", default="val", show_default=True, help="Split to use (prepared manifest or SPLIT.txt).")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="Gate: largest macro IoU drop allowed, as an IoU fraction (0.01 = 1 point).")
@click.option("--max-class-drop", type=click.FloatRange(min=0), default=None,
              help="Gate: largest IoU drop allowed for any single class (IoU fraction).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.md, verify.json and pictures (PNG) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N faces.")
@click.option("--threads", "num_threads", type=click.IntRange(min=1), default=None,
              help="TFLite interpreter threads [default: the interpreter's].")
@click.option("--diagnose", is_flag=True,
              help="Diagnose every int8 model (not only those that fail the gate) and check every fp32 model's "
                   "conversion: name the first ONNX node whose TFLite output differs (one conversion when exact, "
                   "~log2(nodes) when not).")
@click.option("--try-remedies", is_flag=True,
              help="Re-export diagnosed int8 models with each remedy and measure it (slow: one export each).")
def verify_cmd(checkpoint, spec, weights, tflite, export_dir, data_dir, split, max_drop, max_class_drop, report_dir, as_json,
               limit, num_threads, diagnose, try_remedies) -> None:
    """Measure what export cost: PyTorch vs each .tflite on the same real faces, per class, with a gate.

    Exit status: 0 pass, 1 a model fails the gate (the message names it), 2 bad input.

    \b
    Examples:
      facesegtool verify --report reports/verify          # exports/default vs the shipped model
      facesegtool verify --tflite exports/default/*_int8.tflite --max-drop 0.005 --max-class-drop 0.02
      facesegtool verify --data ../shared/data/faces-unlabelled/celebahq --json   # no masks: agreement only
    """
    import json as jsonlib

    from .verify import summary_text, verify

    if tflite and export_dir:
        fail("give --tflite FILE... or --export-dir DIR, not both")
    from pathlib import Path

    from .atomic import check_apart, model_file

    # The report is new files (report.md, verify.json, *.png), so --report may be the export folder itself;
    # none of them may land on an input, and it may not hold the faces it reads.
    reports = [Path(report_dir) / n for n in ("report.md", "verify.json", "drops.png")] if report_dir else None
    check_apart({"--report": reports}, {"--model": model_file(checkpoint), "--spec": spec, "--weights": weights,
                                        "--tflite": [*tflite, *(Path(t).with_suffix(".json") for t in tflite)]})
    check_apart({"--report": report_dir}, {"--data": data_dir})
    result = verify(checkpoint=checkpoint, tflite=list(tflite) or None, export_dir=export_dir, data_dir=data_dir,
                    split=split, max_drop=max_drop, max_class_drop=max_class_drop, report_dir=report_dir,
                    limit=limit, num_threads=num_threads, diagnose=True if diagnose else None,
                    try_remedies=try_remedies, spec=spec, weights=weights)
    if as_json:
        click.echo(jsonlib.dumps(result.to_dict(), indent=2))
    else:
        click.echo(summary_text(result), nl=False)
    if report_dir:
        click.echo(f"report: {report_dir}/report.md", err=as_json)
    if not result.passed:
        click.secho("verify failed: " + " | ".join(result.failures), fg="red", err=True)
        sys.exit(1)


# --- bench -----------------------------------------------------------------------------------


def _int_list(value: str, option: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        items = []
    if not items or min(items) < 1:
        fail(f"{option} expects positive integers separated by commas, e.g. 1,2; got {value!r}")
    return items


@main.command("bench")
@click.option("--device", type=click.Choice(["host", "adb"]), default="host", show_default=True,
              help="Measure on this machine, or on an Android phone through adb + benchmark_model.")
@model_options("host: the model the exports came from (their sidecars), else the shipped model")
@click.option("--export-dir", type=click.Path(file_okay=False), default=None,
              help="Folder written by `facesegtool export` (.tflite + sidecar .json, .onnx) "
                   "[default: exports/default, with the shipped model].")
@click.option("--models", "model_files", multiple=True, type=click.Path(dir_okay=False),
              help="A .tflite or .onnx file (repeatable).")
@click.option("--threads", default=None, help="Thread counts, comma-separated [default: host 1,2; adb 1,4].")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="Timed runs [default: host 30, adb 50].")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Warm-up runs (not timed).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of the table.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench", show_default=True,
              help="Where bench_<device>.json and the bar chart .png go.")
@click.option("--serial", default=None, help="adb: the device serial (`adb devices`) when several are connected.")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), default=None,
              help="adb: TFLite's benchmark_model for the phone [default: $FACESEGTOOL_BENCHMARK_MODEL].")
@click.option("--delegate", "delegates", default="cpu,xnnpack", show_default=True,
              help="adb: comma-separated, from cpu,xnnpack,gpu (fp16 arithmetic, the tool's default),gpu-fp32,"
                   "nnapi (TFLite's benchmark_model) or npu (LiteRT's CompiledModel one).")
@click.option("--op-profiling", is_flag=True, help="adb: --enable_op_profiling, to list the ops left outside the delegate.")
@click.option("--require-full-delegation", is_flag=True,
              help="adb: a gpu/nnapi run whose delegate takes only part of the graph counts as failed.")
@click.option("--run-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="adb: seconds one benchmark_model run may take before it counts as hung.")
def bench_cmd(device, checkpoint, spec, weights, export_dir, model_files, threads, runs, warmup, as_json, out_dir, serial,
              benchmark_binary, delegates, op_profiling, require_full_delegation, run_timeout) -> None:
    """Latency side by side: PyTorch, ONNX Runtime and each TFLite variant on the host, or
    benchmark_model per delegate and thread count on an Android phone.

    \b
    Examples:
      facesegtool bench --device host --export-dir exports --threads 1,2
      facesegtool bench --device adb --export-dir exports --benchmark-binary ./android_aarch64_benchmark_model \\
          --threads 1,4 --delegate xnnpack,gpu --op-profiling
    """
    import json as jsonlib
    from pathlib import Path

    from .atomic import check_apart, model_file
    from .bench.adb import AdbDisconnected, run_adb_bench
    from .bench.host import run_host_bench
    from .bench.report import failures, format_table, report_stem

    thread_list = _int_list(threads or ("1,2" if device == "host" else "1,4"), "--threads")
    # Only new report files go into --out (bench_<kind>[_<serial>].json/.png), so it may be the export folder
    # itself; what must not happen is one of them landing on an input.
    reports = [Path(out_dir) / f"bench_{kind}{ext}" for kind in ("host", "adb") for ext in (".json", ".png")]
    check_apart({"--out": reports}, {"--model": model_file(checkpoint), "--spec": spec, "--weights": weights,
                                     "--models": model_files, "--benchmark-binary": benchmark_binary})
    try:
        if device == "host":
            report = run_host_bench(checkpoint=checkpoint, spec=spec, weights=weights, export_dir=export_dir,
                                    models=model_files,
                                    threads=thread_list, runs=runs or 30, warmup=warmup, out_dir=out_dir)
        else:
            if checkpoint:
                click.echo("note: --checkpoint is not used on the device (benchmark_model runs .tflite only)", err=True)
            report = run_adb_bench(export_dir=export_dir, models=model_files, serial=serial,
                                   benchmark_binary=benchmark_binary, threads=thread_list,
                                   delegates=[d for d in delegates.split(",") if d.strip()], runs=runs or 50,
                                   warmup=warmup, op_profiling=op_profiling, out_dir=out_dir,
                                   require_full_delegation=require_full_delegation, run_timeout=run_timeout)
    except AdbDisconnected as exc:  # what was measured before is still worth a look
        if exc.report and exc.report["results"]:
            click.echo(format_table(exc.report), err=True)
        raise
    stem = Path(out_dir) / report_stem(report)
    if as_json:
        click.echo(jsonlib.dumps(report, indent=2))
    else:
        click.echo(format_table(report))
    png = Path(f"{stem}.png")
    click.echo(f"wrote {stem}.json" + (f" and {png}" if png.exists() else ""), err=as_json)
    problems = failures(report, out_dir)
    if problems:
        fail(*problems)


# --- sweep -----------------------------------------------------------------------------------


@main.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Sweep folder: trials/, results.json/.csv/.md, pareto.png. Run again to continue a killed sweep.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trials at a time.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads per trial [default: CPUs / jobs].")
@click.option("--launcher", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Trials as local processes, or as Ray Tune trials (pip install 'facesegtool[ray]').")
@click.option("--ray-address", default=None, help="ray: address of a running Ray cluster [default: start a local Ray].")
@click.option("--retry-failed", is_flag=True, help="Run failed trials again (finished ones never are).")
def sweep_cmd(spec, out_dir, jobs, threads, launcher, ray_address, retry_failed) -> None:
    """Run a grid of trials, each train -> eval -> export (fp32 + int8) -> verify -> host bench, and
    write the results as tables and a Pareto plot of accuracy against int8 latency.

    A failed trial is a row with its error; the sweep goes on. The shipped specs in models/sweeps/
    re-run the design's tables.

    \b
    Examples:
      facesegtool sweep models/sweeps/weights.yaml --out runs/sweep-weights
      facesegtool sweep models/sweeps/losses.yaml --out runs/sweep-losses --jobs 2 --threads 1
      facesegtool sweep models/sweeps/regseg.yaml --out runs/sweep-regseg --launcher ray
    """
    from .sweep import run_sweep

    try:
        report = run_sweep(spec, out_dir, jobs=jobs, launcher=launcher, threads=threads, retry_failed=retry_failed,
                           ray_address=ray_address)
    except KeyboardInterrupt:
        fail(f"interrupted; run the same command again to continue (finished trials are kept in {out_dir})")
    ok = sum(r["status"] == "ok" for r in report.rows)
    click.echo(f"{len(report.rows)} of {len(report.spec.trials)} trials finished ({ok} ok, {len(report.rows) - ok} failed; "
               f"{len(report.ran)} run now)")
    for r in report.rows:
        if r["status"] != "ok":
            click.echo(f"  failed {r['name']} at {r['failed_step']}: {r['error']}")
    click.echo("wrote " + ", ".join(str(p) for p in report.files))
    if report.rows and ok == 0:
        fail(f"every trial of {spec} failed (see the errors above); fix the spec or the data and rerun with "
             f"`facesegtool sweep {spec} --out {out_dir} --retry-failed`")


@main.command("sweep-combine")
@click.argument("sweeps", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the combined results.json/.csv/.md and pareto.png.")
@click.option("--title", default="Combined sweeps", show_default=True, help="Title of the table and the plot.")
def sweep_combine_cmd(sweeps, out_dir, title) -> None:
    """Put several finished sweeps in one table and one Pareto plot (e.g. every architecture).

    \b
    Example:
      facesegtool sweep-combine runs/sweep-backbones runs/sweep-ddrnet runs/sweep-regseg \\
        --out runs/architectures --title "Architectures at one recipe"
    """
    from .sweep import combine_results

    files = combine_results(list(sweeps), out_dir, title)
    click.echo("wrote " + ", ".join(str(p) for p in files))


# --- predict / android -----------------------------------------------------------------------


@main.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model", default=None, metavar="FILE",
              help="An exported FILE.tflite (its sidecar FILE.json beside it says how to feed it), or any model "
                   "export takes: a checkpoint, .pt2, TorchScript, .onnx, or CODE.py:FUNCTION (your code runs here) "
                   "with --weights.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="PyTorch checkpoint [default: the shipped models/default/model.pt].")
@click.option("--spec", type=click.Path(dir_okay=False), default=None,
              help="A non-.tflite model's contract (YAML; see `facesegtool export --help`).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="With --model CODE.py:FUNCTION: its state_dict (read with weights_only=True).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="predictions", show_default=True,
              help="Output folder.")
@click.option("--effect", "effect", default=None, metavar="SPEC",
              help="Effects, e.g. hair=#8040C0,lips=#C02040,brows=#503830,smooth=3; a name alone takes its "
                   "default; 'none' for no effect image [default: all four with default colours].")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Strength of the overlay and the effects.")
@click.option("--face-crop", is_flag=True, help="Find faces (MediaPipe BlazeFace) and parse each crop: for ordinary photos.")
@click.option("--detector", type=click.Choice(["blazeface", "haar"]), default="blazeface", show_default=True,
              help="With --face-crop: the face detector (haar: OpenCV's cascades, the old default).")
@click.option("--upsample", type=click.Choice(["nearest", "bilinear", "refined"]), default="bilinear", show_default=True,
              help="How class scores reach the photo's pixels: bilinear on the scores before the argmax (smooth "
                   "edges), refined (plus a guided filter on the probabilities), nearest (the argmax, blocky).")
@click.option("--beard/--no-beard", default=True, show_default=True,
              help="Facial hair (hair below the eyes inside the face, joined to it) shown as beard, not hair.")
@click.option("--whole-head/--crop-only", default=True, show_default=True,
              help="With --face-crop: also parse a box twice the crop around each face, for the hair past the crop, "
                   "merged without a seam (--crop-only: the crop alone).")
@click.option("--temporal", type=click.FloatRange(0, 1, max_open=True), default=0.6, show_default=True,
              help="Videos: how strongly class scores are smoothed over time (0 = every frame on its own); with "
                   "--face-crop the crop also follows the face instead of jumping with each detection.")
@click.option("--runtime", type=click.Choice(["litert", "mediapipe"]), default="litert", show_default=True,
              help="What runs a .tflite --model: the LiteRT interpreter fed as its sidecar says, or MediaPipe's stock "
                   "ImageSegmenter fed as the file's standard metadata says (pip install -e '.[mediapipe]').")
def predict_cmd(inputs, model, checkpoint, spec, weights, out_dir, effect, alpha, face_crop, detector, upsample, beard,
                whole_head, temporal, runtime) -> None:
    """Colour mask, overlay and beauty-effect images for photos, folders and videos.

    Writes OUT/<name>_mask.png, _overlay.png and _effect.png per image (.mp4 per video), and
    OUT/sheet.jpg with every image's overlay and effect side by side. An unreadable or truncated
    input is skipped (one error line each, exit status 2) and the others still run.
    OUT/measures.json holds the figures: per photo the share of the hair outline lying on a crop
    edge (a seam; --face-crop), per video how much consecutive masks agree. CelebAMask-HQ, the
    training data, has no beard label: beards are derived from the hair class (--beard).

    \b
    Examples:
      facesegtool predict ../shared/data/faces-in-the-wild --face-crop --out out/wild
      facesegtool predict clip.mp4 --model exports/default/model_int8.tflite --effect hair=#8040C0,smooth
    """
    from .predict import predict
    from .predict.effects import parse_effects

    report = predict(inputs, model=model, checkpoint=checkpoint, out_dir=out_dir, effects=parse_effects(effect),
                     alpha=alpha, face_crop=face_crop, whole_head=whole_head, temporal=temporal, upsample=upsample,
                     beard=beard, detector=detector, spec=spec, weights=weights, runtime=runtime)
    click.echo(f"model: {report.model}")
    for p in report.predictions:
        found = ""
        if face_crop:
            found = (f", {p.faces} face(s)" if p.kind == "image" else f", faces in {p.faces}/{p.frames} frames")
            if p.faces == 0:
                found += " (no face found: parsed the whole picture)"
        elif p.kind == "video":
            found = f", {p.frames} frames"
        figures = "".join(f", {k} {v:.3f}" for k, v in p.measures.items() if isinstance(v, float))
        click.echo(f"{p.input}{found}{figures} -> {', '.join(str(f.name) for f in p.outputs.values())}")
    if report.measures:
        click.echo(f"wrote {len(report.predictions)} result(s) to {report.out_dir}; figures in {report.measures}")
    if report.sheet:
        click.echo(f"contact sheet (overlay | effect per image): {report.sheet}")
    if report.skipped:  # the others ran; the exit status still says that some input was bad
        for _, reason in report.skipped:
            click.secho(f"error: skipped {reason}", fg="red", err=True)
        sys.exit(2)


@main.group()
def android() -> None:
    """The Android demo app (android_demo/): put an exported model into it."""


@android.command("install-model")
@click.option("--tflite", required=True, type=click.Path(dir_okay=False), help="Exported FILE.tflite (+ FILE.json).")
@click.option("--app", "app_dir", type=click.Path(file_okay=False), default=None,
              help="The android_demo project folder [default: this repository's android_demo/].")
def android_install_model(tflite, app_dir) -> None:
    """Copy a .tflite and its sidecar into the app's assets (as model.tflite / model.json).

    \b
    Example:
      facesegtool android install-model --tflite exports/default/model_int8.tflite
    """
    from .android import APP_DIR, install_model

    model, sidecar = install_model(tflite, app_dir or APP_DIR)
    click.echo(f"installed {tflite} -> {model} and {sidecar}; rebuild the app to ship it")


if __name__ == "__main__":
    main()
