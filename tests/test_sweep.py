"""facesegtool sweep: a spec of trials -> train, eval, export, verify, bench each -> result tables.

The sweep tests run real trials on a few shared faces at 64 px, one epoch: two good trials and one
whose export fails. The sweep is killed (SIGKILL, whole process group) while the second trial runs
and then run again: the first trial must not run again, the rest must finish.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import CELEBAMASK_MINI, require_shared
from facesegtool.sweep import SpecError, load_spec, pareto_front

TRIALS = [
    {"name": "equal", "weights": "equal"},
    {"name": "proportional", "weights": "proportional"},
]
# Export sizes must be multiples of 32: this trial trains and evaluates, then fails to export.
BAD_TRIAL = {"name": "bad-export", "weights": "equal", "export": {"size": 48}}


def write_spec(path: Path, prepared: Path, trials: list[dict], **extra) -> Path:
    spec = {
        "name": "tiny",
        "title": "Tiny sweep",
        "budget": "64 px, 1 epoch, 8 train / 4 val faces",
        "data": {"prepared": str(prepared)},
        "train": {"model": "unet-mobilenetv3-small", "epochs": 1, "batch_size": 4, "pretrained": "none",
                  "augment": "none", "workers": 0},
        "trials": trials,
        "export": {"quant": ["fp32", "int8"], "num_calib": 8},
        "verify": {"limit": 4},
        "bench": {"threads": 1, "runs": 3, "warmup": 1},
        "table": ["name", "weights"],
        **extra,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep_command(spec: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "facesegtool.cli", "sweep", str(spec), "--out", str(out), "--threads", "1", *args]


def sweep_env() -> dict:
    # onnx2tf runs `onnxsim` from PATH: this interpreter's bin first.
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory) -> Path:
    require_shared(CELEBAMASK_MINI)
    from conftest import write_tiny_prepared

    return write_tiny_prepared(tmp_path_factory.mktemp("sweep-data") / "prepared", n_train=8, n_val=4, size=64)


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_prepared, tmp_path_factory) -> dict:
    """Run the three-trial sweep, kill it once trial 2 has started, record trial 1, run it again to the end."""
    root = tmp_path_factory.mktemp("sweep")
    spec = write_spec(root / "spec.yaml", tiny_prepared, [*TRIALS, BAD_TRIAL])
    out = root / "out"
    first, second = out / "trials" / "01-equal", out / "trials" / "02-proportional"
    proc = subprocess.Popen(sweep_command(spec, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=sweep_env(), start_new_session=True)
    deadline = time.time() + 3600  # generous: a loaded 2-core machine converts slowly
    try:
        while "[sweep] step train" not in _read(second / "log.txt"):
            assert proc.poll() is None, f"the sweep ended before trial 2 started:\n{proc.stdout.read().decode()}"
            assert time.time() < deadline, "trial 2 did not start in time"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its trial process, as a hard kill would
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = {
        "first_result": (first / "result.json").read_text(),
        "first_mtime": (first / "result.json").stat().st_mtime_ns,
        "second_result_existed": (second / "result.json").exists(),
        "results_md_existed": (out / "results.md").exists(),
    }
    rerun = subprocess.run(sweep_command(spec, out), capture_output=True, text=True, env=sweep_env(), timeout=3600)
    return {"out": out, "spec": spec, "killed": killed, "rerun": rerun, "first": first, "second": second}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# --- the spec ---------------------------------------------------------------------------------------


def test_spec_expands_grid_per_trial_and_names_trials(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump({
        "data": {"prepared": "prep"},
        "train": {"epochs": 2},
        "trials": [{"model": "unet-mobilenetv3-small"}, {"model": "regseg", "bench": {"runs": 5}}],
        "grid": {"weights": ["equal", "proportional"]},
    }))
    spec = load_spec(spec_file)
    assert [t.name for t in spec.trials] == [
        "unet-mobilenetv3-small_equal", "unet-mobilenetv3-small_proportional", "regseg_equal", "regseg_proportional"]
    assert spec.table == ["model", "weights"]  # the fields that vary
    assert [t.bench["runs"] for t in spec.trials] == [20, 20, 5, 5]
    assert all(t.train["epochs"] == 2 for t in spec.trials)
    assert spec.trials[3].labels == {"model": "regseg", "weights": "proportional"}


@pytest.mark.parametrize("content, message", [
    ({"data": {"prepared": "p"}, "train": {"epoch": 3}}, "unknown key(s) epoch in train"),
    ({"data": {"prepared": "p"}, "train": {"model": "no-such-net"}}, "unknown model 'no-such-net'"),
    ({"data": {"prepared": "p"}, "train": {"out": "x"}}, "unknown key(s) out in train"),
    ({"train": {}}, "data needs either prepared"),
    ({"data": {"prepared": "p"}, "steps": ["train", "bench"]}, "add export to steps"),
    ({"data": {"prepared": "p"}, "trials": [{"name": "a"}, {"name": "a"}]}, "both named 'a'"),
    ({"data": {"prepared": "p", "holdout": 0}}, "data.holdout is a number of train faces"),
    ({"data": {"prepared": "p", "holdout": "80"}}, "data.holdout is a number of train faces"),
])
def test_bad_spec_is_one_clear_error(tmp_path, content, message):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(yaml.safe_dump(content))
    with pytest.raises(SpecError) as err:
        load_spec(spec_file)
    assert str(err.value).startswith(str(spec_file)) and message in str(err.value)


def test_bad_spec_on_the_command_line_exits_2_without_traceback(tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("data: {prepared: p}\ngrid: {loss: focal}\n")
    proc = subprocess.run(sweep_command(spec_file, tmp_path / "out"), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "non-empty lists" in proc.stderr


def test_pareto_front_keeps_only_undominated_points():
    # (latency ms, accuracy): b is slower and worse than a; d is the fastest; c the most accurate.
    points = [(10.0, 0.70), (12.0, 0.65), (20.0, 0.80), (5.0, 0.60), (20.0, 0.75)]
    assert pareto_front(points) == [3, 0, 2]


def test_shipped_specs_load():
    specs = sorted((Path(__file__).resolve().parents[1] / "models" / "sweeps").glob("*.yaml"))
    assert len(specs) >= 6
    for path in specs:
        spec = load_spec(path)
        assert spec.budget and spec.trials, path
        # The shipped tables pick recipes: they score on faces carved from train, never on the val we report.
        assert spec.data.get("holdout"), path


def test_holdout_scores_trials_on_faces_carved_from_train(tiny_prepared, tmp_path):
    from facesegtool.data.dataset import load_prepared, split_names
    from facesegtool.sweep.runner import prepare_data

    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_prepared, TRIALS))
    spec.data["holdout"] = 3
    dev = prepare_data(spec, tmp_path / "out")
    assert dev == (tmp_path / "out" / "dev").resolve()
    full, carved = load_prepared(tiny_prepared), load_prepared(dev)
    scored, trained = set(split_names(carved, "val")), set(split_names(carved, "train"))
    assert len(scored) == 3 and scored | trained == set(split_names(full, "train"))
    assert not scored & trained and not scored & set(split_names(full, "val"))
    assert prepare_data(spec, tmp_path / "out") == dev  # a resumed sweep reuses the carve


# --- a real sweep ---------------------------------------------------------------------------------


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_sweep_writes_every_result_file(killed_and_resumed):
    out, rerun = killed_and_resumed["out"], killed_and_resumed["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for name in ("results.json", "results.csv", "results.md", "pareto.png", "spec.yaml"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["trials"]}
    assert list(rows) == ["equal", "proportional", "bad-export"]
    for name in ("equal", "proportional"):
        row = rows[name]
        assert row["status"] == "ok", row
        f = row["figures"]
        assert 0 <= f["iou_fg"] <= f["iou"] + 1 and 0 < f["iou"] <= 1
        assert f["params"] > 1e6 and f["modules"] > 50 and f["gmacs"] > 0
        assert f["torch_ms"] > 0 and f["fp32_ms"] > 0 and f["int8_ms"] > 0
        assert 0 < f["int8_mb"] < f["fp32_mb"]  # int8 weights: about a quarter of fp32
        assert abs(f["fp32_drop_fg"]) < 1.0  # fp32 TFLite matches PyTorch
        assert f["int8_iou_fg"] is not None and f["gpu_delegate"].startswith(("yes", "no"))
        assert row["config"]["train"]["weights"] == name  # every figure with its trial's config
        assert set(row["seconds"]) == {"train", "eval", "export", "verify", "bench"}
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["name"] for r in table] == ["equal", "proportional", "bad-export"]
    assert table[1]["config.train.weights"] == "proportional" and float(table[1]["int8_ms"]) > 0
    md = (out / "results.md").read_text()
    assert "| name | weights | IoU | F1 | Params (M) | Modules | CPU ms (PyTorch) |" in md
    assert "TFLite int8 ms" in md and "GPU delegate" in md and "pareto.png" in md
    assert "| proportional | proportional |" in md


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_killed_sweep_resumes_without_redoing_the_first_trial(killed_and_resumed):
    killed, first, second = killed_and_resumed["killed"], killed_and_resumed["first"], killed_and_resumed["second"]
    assert not killed["second_result_existed"]  # killed while trial 2 was running
    assert killed["results_md_existed"]  # results are written as each trial finishes
    assert (first / "result.json").read_text() == killed["first_result"]
    assert (first / "result.json").stat().st_mtime_ns == killed["first_mtime"]
    assert _read(first / "log.txt").count("[sweep] step train") == 1  # trial 1 ran once
    assert _read(second / "log.txt").count("[sweep] step train") == 2  # trial 2 started again after the kill
    assert json.loads((second / "result.json").read_text())["status"] == "ok"


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_failing_trial_is_a_row_and_the_sweep_goes_on(killed_and_resumed):
    out, rerun = killed_and_resumed["out"], killed_and_resumed["rerun"]
    row = json.loads((out / "trials" / "03-bad-export" / "result.json").read_text())
    assert row["status"] == "failed" and row["failed_step"] == "export"
    assert "multiple of 32" in row["error"]
    assert row["figures"]["iou"] > 0  # what ran before the failure is kept
    assert "Traceback" in (out / "trials" / "03-bad-export" / "error.txt").read_text()
    assert "failed bad-export at export" in rerun.stdout
    md = (out / "results.md").read_text()
    assert "**failed** (export)" in md and "`bad-export` at export: ExportOptionError" in md
    # A rerun runs nothing more: finished trials, failed ones included, are kept.
    again = subprocess.run(sweep_command(killed_and_resumed["spec"], out), capture_output=True, text=True,
                           env=sweep_env(), timeout=600)
    assert again.returncode == 0 and "0 run now" in again.stdout


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_ray_launcher_runs_the_same_two_trials(tiny_prepared, tmp_path):
    pytest.importorskip("ray.tune", reason="Ray Tune not installed (pip install 'facesegtool[ray]')")
    spec = write_spec(tmp_path / "spec.yaml", tiny_prepared, TRIALS, steps=["train", "eval"])
    out = tmp_path / "out"
    proc = subprocess.run(sweep_command(spec, out, "--launcher", "ray", "--jobs", "2"), capture_output=True,
                          text=True, env={**sweep_env(), "RAY_USAGE_STATS_ENABLED": "0"}, timeout=1500)
    if "could not start a local Ray node" in proc.stderr:
        # Ray gives its local node a fixed 30 s to come up; on a heavily loaded machine it misses that.
        pytest.skip(f"Ray could not start its local node here: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert [(r["name"], r["status"]) for r in rows] == [("equal", "ok"), ("proportional", "ok")]
    assert all(r["figures"]["iou"] > 0 and r["figures"]["torch_ms"] > 0 for r in rows)
    # Ray Tune ran them: its experiment folder holds one trial folder per sweep trial.
    tune_trials = [p for p in (out / "ray" / "tune").iterdir() if p.is_dir() and p.name.startswith("_ray_trial")]
    assert len(tune_trials) == 2


def test_rerun_with_a_changed_spec_is_refused(killed_and_resumed, tmp_path):
    spec = yaml.safe_load(killed_and_resumed["spec"].read_text())
    spec["train"]["epochs"] = 2  # not what the finished trials in --out were trained with
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(spec))
    proc = subprocess.run(sweep_command(changed, killed_and_resumed["out"]), capture_output=True, text=True,
                          env=sweep_env(), timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "was run with another config" in proc.stderr and "01-equal" in proc.stderr


def test_combined_sweeps_share_one_table_and_plot(killed_and_resumed, tmp_path):
    from facesegtool.sweep import combine_results

    out = killed_and_resumed["out"]
    files = combine_results([out, out], tmp_path / "combined", "Both")
    assert [p.name for p in files] == ["results.json", "results.csv", "results.md", "pareto.png"]
    combined = json.loads((tmp_path / "combined" / "results.json").read_text())
    single = json.loads((out / "results.json").read_text())
    assert len(combined["trials"]) == 2 * len(single["trials"])
    # the same trial name in two sweeps is told apart by its sweep's
    assert {t["name"] for t in combined["trials"]} == {f"tiny/{t['name']}" for t in single["trials"]}
    md = (tmp_path / "combined" / "results.md").read_text()
    assert md.startswith("# Both") and "| sweep | name | weights |" in md
    with pytest.raises(ValueError, match="no readable results.json"):
        combine_results([out, tmp_path / "nothing"], tmp_path / "c2", "x")


# --- issue 31: a sweep's --out is checked first and never lands on an input --------------------------


def fake_sweep(folder: Path, name: str) -> Path:
    """A finished sweep's results (one ok trial), written by the module's own writer."""
    from facesegtool.sweep.results import write_results

    row = {"name": "t1", "status": "ok", "labels": {}, "figures": {"iou_fg": 0.5, "torch_ms": 10.0, "iou": 0.6},
           "seconds": {}, "config": {}}
    meta = {"name": name, "title": name, "table": ["name"], "trials": 1, "finished": 1, "ok": 1, "failed": 0,
            "data": "d", "bench_threads": "1", "cpu": "x"}
    folder.mkdir(parents=True)
    write_results(folder, [row], meta)
    return folder


def test_sweep_combine_refuses_an_input_as_its_output(tmp_path):
    a, b = fake_sweep(tmp_path / "a", "a"), fake_sweep(tmp_path / "b", "b")
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    cmd = [sys.executable, "-m", "facesegtool.cli", "sweep-combine", str(a), str(b)]
    for out in (a, tmp_path):  # the sweep itself, or a folder holding it
        proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"error: --out {out}" in proc.stderr and "the input sweep" in proc.stderr
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before
    done = subprocess.run([*cmd, "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((tmp_path / "c" / "results.json").read_text())["trials"]) == 2


def test_sweep_into_a_read_only_folder_is_one_error_line(tiny_prepared, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        spec = write_spec(tmp_path / "spec.yaml", tiny_prepared, TRIALS[:1])
        proc = subprocess.run(sweep_command(spec, ro / "sweep"), capture_output=True, text=True, env=sweep_env())
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: --out {ro / 'sweep'}" in proc.stderr and "choose another --out" in proc.stderr


def test_sweep_refuses_a_folder_of_user_files_and_its_data(tiny_prepared, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_prepared, TRIALS[:1])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for out, message in ((mine, "holds files that are not a sweep's"), (tiny_prepared, "is the input data.prepared"),
                         (tiny_prepared.parent, "holds the input data.prepared")):
        proc = subprocess.run(sweep_command(spec, out), capture_output=True, text=True, env=sweep_env())
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and not (tiny_prepared / "spec.yaml").exists()


def test_an_empty_trials_list_is_refused(tmp_path):
    spec_file = tmp_path / "empty.yaml"
    spec_file.write_text(yaml.safe_dump({"data": {"prepared": "p"}, "trials": []}))
    with pytest.raises(SpecError, match="'trials' is empty"):
        load_spec(spec_file)


def test_spec_sources_are_built_by_the_data_prepare_registry(tmp_path):
    """A spec's facesynthetics: / synthesisai: keys prepare the same set as `data prepare` with those options."""
    import shutil

    from click.testing import CliRunner

    from conftest import SHARED
    from facesegtool.cli import main
    from facesegtool.data.dataset import load_prepared
    from facesegtool.labels import CLASS_INDEX
    from facesegtool.sweep.runner import prepare_data

    fs_all, sai_all = SHARED / "beard-labelled" / "facesynthetics-100", SHARED / "beard-labelled" / "synthesisai-16"
    require_shared(fs_all, sai_all)
    fs, sai = tmp_path / "fs", tmp_path / "sai"
    fs.mkdir()
    sai.mkdir()
    for name in ("000005", "000008", "000012"):  # beard + mouth interior; glasses; beard + headwear
        for suffix in (".png", "_seg.png"):
            shutil.copy(fs_all / f"{name}{suffix}", fs)
    for name in ("0", "1"):  # no beard; beard + mustache + glasses
        for suffix in (".rgb.png", ".segments.png", ".info.json"):
            shutil.copy(sai_all / f"{name}{suffix}", sai)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "beards", "data": {"facesynthetics": str(fs), "synthesisai": [str(sai)],
                                                                    "size": 64, "val_fraction": 0.3}}))
    swept = load_prepared(prepare_data(load_spec(spec_path), tmp_path / "sweep"))

    result = CliRunner().invoke(main, ["data", "prepare", "--facesynthetics", str(fs), "--synthesisai", str(sai),
                                       "--size", "64", "--val-fraction", "0.3", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    prepared = load_prepared(tmp_path / "cli")
    assert [s["kind"] for s in swept["sources"]] == ["facesynthetics", "synthesisai"]
    assert swept["sources"] == prepared["sources"] and swept["items"] == prepared["items"]
    assert swept["class_pixels"] == prepared["class_pixels"]
    beard = CLASS_INDEX["beard"]
    assert sum(swept["class_pixels"][split][beard] for split in ("train", "val")) > 0  # the sources' own beard labels


def test_spec_refuses_a_data_source_the_registry_does_not_know(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"data": {"lapa": "somewhere", "size": 64}}))
    with pytest.raises(SpecError, match=r"unknown key\(s\) lapa in data; allowed: .*facesynthetics.*synthesisai"):
        load_spec(spec_path)
