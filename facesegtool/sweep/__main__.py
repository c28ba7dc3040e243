"""`python -m facesegtool.sweep TRIAL_DIR`: run one trial of a sweep (what the launchers start); see trial.py."""

from .trial import main

main()
