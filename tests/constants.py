"""Values many tests share: the SDK app id they track tasks under and the simulator's credential.

``SECRET_ID``/``SECRET_KEY`` are what ``python -m exporter simulate`` accepts by default, so the
same pair works for an in-process ``Simulator(credentials={SECRET_ID: SECRET_KEY})`` and for a
simulator started as a subprocess.
"""

from __future__ import annotations

APP = 1400000001
SECRET_ID = "AKIDsimulator"
SECRET_KEY = "simulator-secret-key"
