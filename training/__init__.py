"""Model families, baselines, evaluation and the MLflow registry flow of Tailor."""

import os

# OpenMP threads that wait for work sleep instead of spinning (set before LightGBM or
# implicit load libgomp): on two cores shared with other work, spinning threads made a
# two-thread LightGBM fit slower than one; passive, two threads fit next purchase's ranker in
# 38 s instead of 69 s idle, and 29 s instead of 43 s beside two busy processes.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
