"""The Android demo's plain-Java core agrees with the Python side, to the pixel.

1. The committed golden files are what the Python code computes today (recomputed from the
   committed inputs and compared byte for byte), so they cannot go stale.
2. The Java core, compiled with javac and run under JUnit 4 (android_demo/core/run_tests.sh),
   reproduces the freshly computed goldens: input tensors, masks, overlays, effects (exact),
   bilinear resize (within 1 level of OpenCV), and the app's whole frame pipeline (FramePipeline) on
   real faces: camera frames and photos to the pixels shown (exact).
3. The Java sidecar reader is the twin of facesegtool.contract: on the real export's sidecar and
   tampered copies it accepts, refuses and reads what the Python reader does (sidecar_parity.json);
   it reads real export sidecars; install-model puts a matching pair into the app's assets and
   refuses a mismatched one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from android_goldens import EXPORT_SIDECAR, GOLDEN_DIR, pipeline_inputs, write_golden_expectations
from facesegtool.android import AndroidError, install_model

REPO = Path(__file__).resolve().parents[1]
RUN_TESTS = REPO / "android_demo" / "core" / "run_tests.sh"
GOLDEN_INPUTS = ("input.ppm", "logits_float32.f32.gz", "logits_int8.i8.gz", "sidecar_float32.json", "sidecar_int8.json",
                 "logits_wide_float32.f32.gz", "frames_float32.f32.gz", EXPORT_SIDECAR,
                 *pipeline_inputs())
JAVA_LIB = Path(os.environ.get("JAVA_LIB", "/usr/share/java"))


def require_java() -> None:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("no JDK (javac) on PATH: apt-get install -y --no-install-recommends openjdk-17-jdk-headless")
    if not (JAVA_LIB / "junit4.jar").is_file():
        pytest.skip(f"no JUnit 4 in {JAVA_LIB}: apt-get install -y --no-install-recommends junit4")
    if not (JAVA_LIB / "json-android.jar").is_file():
        pytest.skip(f"no org.json in {JAVA_LIB}: apt-get install -y --no-install-recommends libandroid-json-org-java")


def run_java_tests(golden_dir: Path, sidecar_files: list[Path] | None = None) -> str:
    env = dict(os.environ, GOLDEN_DIR=str(golden_dir))
    if sidecar_files:
        env["SIDECAR_FILES"] = os.pathsep.join(str(p) for p in sidecar_files)
    res = subprocess.run(["bash", str(RUN_TESTS)], env=env, capture_output=True, text=True, timeout=600)
    output = res.stdout + res.stderr
    assert res.returncode == 0, f"JUnit failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def fresh_goldens(tmp_path_factory) -> Path:
    """The committed golden inputs, with every expected file recomputed by today's Python code."""
    out = tmp_path_factory.mktemp("golden")
    for name in GOLDEN_INPUTS:
        shutil.copy(GOLDEN_DIR / name, out / name)
    write_golden_expectations(out)
    return out


def test_committed_goldens_are_current(fresh_goldens):
    committed = sorted(p.name for p in GOLDEN_DIR.iterdir())
    fresh = sorted(p.name for p in fresh_goldens.iterdir())
    assert committed == fresh
    stale = [n for n in fresh if (GOLDEN_DIR / n).read_bytes() != (fresh_goldens / n).read_bytes()]
    assert not stale, f"goldens out of date (rerun python tools/android_goldens.py): {stale}"


def test_goldens_cover_a_real_face_with_every_effect_class(fresh_goldens):
    from android_goldens import read_pnm
    from facesegtool.labels import CLASS_INDEX

    mask = read_pnm(fresh_goldens / "mask_float32.pgm")
    for name in ("hair", "lips", "eyebrows", "face", "background"):
        assert (mask == CLASS_INDEX[name]).sum() > 100, f"golden mask has too little {name}"
    cases = json.loads((fresh_goldens / "cases.json").read_text())
    assert {c["alpha"] for c in cases["effects"]} == {0.6, 1.0}


def test_soft_goldens_fade_at_the_edges(fresh_goldens):
    """The soft-alpha goldens exercise the fade: most hair edge pixels get an alpha strictly between
    0 and 256, in the float, int8, probability and upsampled cases; the soft effects differ from the
    hard ones."""
    from android_goldens import read_pnm, read_tensor

    cases = json.loads((fresh_goldens / "cases.json").read_text())["soft"]
    hair = cases["classes"].index("hair")
    for case in cases["alphas"] + [cases["upsampled"]]:
        h, w = case.get("out", case["shape"])[:2]
        alpha = read_tensor(fresh_goldens / case["alphas"], "uint16", (h, w, len(cases["classes"])))[..., hair]
        assert alpha.max() <= 256
        inside = alpha >= 128
        edge = (inside[1:, 1:] != inside[:-1, 1:]) | (inside[1:, 1:] != inside[1:, :-1])
        fading = (alpha[1:, 1:][edge] > 16) & (alpha[1:, 1:][edge] < 240)
        assert edge.sum() > 50 and fading.mean() > 0.5, case["alphas"]
    soft = read_pnm(fresh_goldens / "effects_soft_a100.ppm")
    hard = read_pnm(fresh_goldens / "effects_a100.ppm")
    assert (soft != hard).any(-1).mean() > 0.05


def test_steady_goldens_exercise_the_merge_and_the_smoothing(fresh_goldens):
    """The whole-head mask has hair past the crop's window; the smoothing restarts on the two cuts."""
    from android_goldens import read_pnm
    from facesegtool.predict.head import window
    from facesegtool.labels import CLASS_INDEX

    head = read_pnm(fresh_goldens / "head_mask.pgm")
    ox, oy = window(128)
    outside = np.ones(head.shape, bool)
    outside[oy : oy + 128, ox : ox + 128] = False
    assert (head[outside] == CLASS_INDEX["hair"]).sum() > 1000
    smooth = json.loads((fresh_goldens / "cases.json").read_text())["smooth"]
    assert smooth["restarts"] == [1, 1, 1, 2, 3]


def test_pipeline_goldens_exercise_every_path(fresh_goldens):
    """The frame pipeline goldens cover photos padded both ways, a rotated mirrored camera frame smoothed
    over frames (no restart after the first), effects drawn below the frame's size, a transparent layer;
    the smoothing changes what is shown."""
    from android_goldens import read_pnm

    index = json.loads((fresh_goldens / "pipeline.json").read_text())
    cases = {c["name"]: c for c in index["cases"]}
    assert set(cases) == {"photo_overlay", "photo_effects", "live_overlay", "live_effects"}
    for name in ("photo_overlay", "photo_effects"):
        frame = read_pnm(fresh_goldens / cases[name]["frame"])
        assert frame.shape[0] != frame.shape[1] and cases[name]["out_side"] == max(frame.shape[:2])
    live = cases["live_overlay"]
    assert live["settings"]["mirror"] and live["settings"]["rotation"] == 90 and live["restarts"] == 1
    layers = [(fresh_goldens / f).read_bytes() for f in live["outputs"]]
    assert len(layers) == 3 and layers[1] != layers[2]
    alpha = np.frombuffer(layers[0][layers[0].index(b"ENDHDR\n") + 7:], np.uint8).reshape(-1, 4)[:, 3]
    assert 0.01 < (alpha == 0).mean() < 0.5 and set(np.unique(alpha)) == {0, 128}  # background clear, the rest at 0.5
    effects = cases["live_effects"]
    assert effects["out_side"] * 2 == min(read_pnm(fresh_goldens / effects["frame"]).shape[:2])


def test_sidecar_parity_cases_are_the_contracts_verdicts(fresh_goldens):
    """The parity goldens hold the Python reader's verdicts: the real sidecar and a few valid edits
    accepted, most tampered copies refused with a message naming the field; the app's one difference
    (it needs output.shape and output.dtype) only where those are missing."""
    parity = json.loads((fresh_goldens / "sidecar_parity.json").read_text())
    cases = {c["name"]: c for c in parity["cases"]}
    assert cases["real"]["accepted"] and cases["real"]["values"]["output_quant"][1] == 146
    refused = [c for c in cases.values() if not c["accepted"]]
    assert len(refused) > 40 and all(c["error"] for c in refused)
    assert {n for n, c in cases.items() if c.get("app_needs")} == {"missing_output_shape", "missing_output_dtype"}
    for name in ("missing_classes", "quant_scale_zero", "layout_unknown", "quant_zero_point_float", "palette_short"):
        assert not cases[name]["accepted"], name
    assert cases["nchw_input"]["values"]["input_layout"] == "NCHW" and cases["bgr"]["values"]["channel_order"] == "BGR"


def test_java_core_matches_python_goldens(fresh_goldens):
    require_java()
    output = run_java_tests(fresh_goldens)
    assert "OK (" in output


def test_java_reads_real_export_sidecars(small_export):
    require_java()
    sidecars = [v.sidecar for v in small_export.variants.values()]
    output = run_java_tests(GOLDEN_DIR, sidecars)
    assert f"read {len(sidecars)} export sidecar(s)" in output


def demo_app(app: Path) -> Path:
    """A copy of android_demo's shape: install-model refuses any other folder with an app/ inside."""
    (app / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(REPO / "android_demo" / "settings.gradle.kts", app / "settings.gradle.kts")
    shutil.copy(REPO / "android_demo" / "app" / "src" / "main" / "AndroidManifest.xml", app / "app" / "src" / "main")
    return app


def test_install_model_copies_a_matching_pair(small_export, tmp_path):
    app = demo_app(tmp_path / "android_demo")
    tflite = small_export.variants["int8"].tflite
    model, sidecar = install_model(tflite, app)
    assert model.read_bytes() == Path(tflite).read_bytes()
    assert json.loads(sidecar.read_text()) == json.loads(Path(tflite).with_suffix(".json").read_text())
    assert not [p for p in model.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_install_model_refuses_a_mismatched_pair(small_export, tmp_path):
    app = demo_app(tmp_path / "android_demo")
    src = small_export.variants["int8"].tflite
    other = small_export.variants["fp32"].tflite
    shutil.copy(other, tmp_path / "model.tflite")  # fp32 model with the int8 model's sidecar
    shutil.copy(Path(src).with_suffix(".json"), tmp_path / "model.json")
    with pytest.raises(AndroidError, match="sha256"):
        install_model(tmp_path / "model.tflite", app)
    with pytest.raises(AndroidError, match="not the android_demo"):
        install_model(src, tmp_path)
    assert not (app / "app" / "src" / "main" / "assets").exists()


def test_install_model_refuses_a_lookalike_folder_and_a_class_count_mismatch(small_export, tmp_path):
    """Any folder with an app/ inside once passed for the project; a sidecar of 5 classes for 11 output channels too."""
    src = Path(small_export.variants["fp32"].tflite)
    lookalike = tmp_path / "lookalike"
    (lookalike / "app").mkdir(parents=True)
    with pytest.raises(AndroidError, match="not the android_demo project"):
        install_model(src, lookalike)
    assert sorted(p.name for p in lookalike.rglob("*")) == ["app"]
    shutil.copy(src, tmp_path / "model.tflite")
    sidecar = json.loads(src.with_suffix(".json").read_text())
    sidecar["classes"] = sidecar["classes"][:5]
    sidecar["palette"] = sidecar.get("palette", [])[:5]
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    app = demo_app(tmp_path / "android_demo")
    with pytest.raises(AndroidError, match="5 classes"):
        install_model(tmp_path / "model.tflite", app)
    assert not (app / "app" / "src" / "main" / "assets").exists()


def test_install_model_refuses_a_truncated_tflite_even_when_its_sha_matches(small_export, tmp_path):
    import hashlib

    app = demo_app(tmp_path / "android_demo")
    src = small_export.variants["fp32"].tflite
    data = Path(src).read_bytes()[: len(Path(src).read_bytes()) // 2]
    (tmp_path / "model.tflite").write_bytes(data)
    sidecar = json.loads(Path(src).with_suffix(".json").read_text())
    sidecar["sha256"] = hashlib.sha256(data).hexdigest()  # the sidecar written for the cut file
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    with pytest.raises(AndroidError, match=r"model.tflite: cannot load as a TFLite model.*re-export"):
        install_model(tmp_path / "model.tflite", app)
    assert not (app / "app" / "src" / "main" / "assets").exists()


def test_install_model_refuses_int16_io_the_app_cannot_feed(small_export, tmp_path):
    """A model with int16 input (as an --int16-activations export has) is refused, naming the type."""
    import hashlib

    import tensorflow as tf

    size = 16

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.int16)])
    def net(x):
        f = tf.cast(x, tf.float32)
        return tf.concat([f, f, f, f], axis=-1)[..., :11]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    data = converter.convert()
    (tmp_path / "model.tflite").write_bytes(data)
    sidecar = json.loads(Path(small_export.variants["fp32"].tflite).with_suffix(".json").read_text())
    sidecar["input"].update(shape=[1, size, size, 3], dtype="int16", quantization=None)
    sidecar["output"].update(shape=[1, size, size, 11], dtype="float32", quantization=None)
    sidecar["sha256"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    app = demo_app(tmp_path / "android_demo")
    with pytest.raises(AndroidError, match=r"input int16: the app feeds and reads only float32/int8/uint8"):
        install_model(tmp_path / "model.tflite", app)
    assert not (app / "app" / "src" / "main" / "assets").exists()
