"""`facesegtool sweep`: a grid of trials, each train -> eval -> export (fp32 + int8) -> verify -> host bench.

    from facesegtool.sweep import run_sweep
    report = run_sweep("models/sweeps/weights.yaml", "runs/sweep-weights", jobs=1)
    print(report.files)     # results.json, results.csv, results.md, pareto.png

spec.py reads the YAML spec, trial.py runs one trial by calling the library functions the CLI's
train / eval / export / verify / bench call, runner.py schedules the trials (local processes or Ray
Tune) and resumes a killed sweep, results.py writes the tables and the Pareto plot.
"""

from .results import combine_results, pareto_front
from .runner import LAUNCHERS, SweepError, SweepReport, run_sweep
from .spec import SpecError, SweepSpec, load_spec

__all__ = ["run_sweep", "SweepReport", "SweepError", "LAUNCHERS", "load_spec", "SweepSpec", "SpecError", "pareto_front",
           "combine_results"]
