"""``python tests/kill_during_write.py KIND N -- <speechgrpo train arguments>``: run ``speechgrpo train`` (on a
transformers model) and SIGKILL the process in the middle of the N-th model write of KIND (``checkpoint``:
a checkpoint's model; ``best``: best/), after the first file of the model is written, wherever the trainer
writes it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from speechgrpo.cli import main
from speechgrpo.models.hf_speech_lm import HFSpeechLM

kind, occurrence = sys.argv[1], int(sys.argv[2])
arguments = sys.argv[sys.argv.index("--") + 1:]
seen = {"count": 0}
save = HFSpeechLM.save


def killing_save(self: HFSpeechLM, directory: str | Path, state_dict: Any = None) -> None:
    directory = Path(directory)
    best = directory.name.split(".")[0] == "best"  # best/ or its temporary folder
    matches = best if kind == "best" else directory.parent.name.startswith("step-")
    if matches:
        seen["count"] += 1
        if seen["count"] == occurrence:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "config.json").write_text("{", encoding="utf-8")  # the first file, cut short
            os.kill(os.getpid(), signal.SIGKILL)
    save(self, directory, state_dict)


HFSpeechLM.save = killing_save  # type: ignore[method-assign]
sys.exit(main(arguments))
