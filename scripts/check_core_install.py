"""The install a core user gets: build the wheel, install it into a fresh venv with the core dependencies
only, and run the CLI as that user would. Fails on any traceback, on a core command that does not
work, on an extra's command that does not refuse in one line naming the extra (exit status 2), and
on a package data file missing from the wheel.

    python scripts/check_core_install.py [--keep DIR]     # `make check-install`; about a minute
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (arguments, what the output must contain) for commands that must work on the core install
CORE: list[tuple[list[str], str]] = [
    (["--help"], "usage: speechgrpo"),
    (["rewards"], "bleu"),
    (["bench", "--help"], "signal"),
    (["bench", "signal"], "bertscore: left out, "),  # the bundled groups; BERTScore's extra is missing
    (["bench", "speed", "--groups", "16", "--repeats", "1", "--rewards", "bleu,chrf,rougeL,wer,bertscore", "--out",
      "speed"], "bertscore: left out, "),  # with --out: the CSV, Markdown and JSON files, no pandas needed
    (["openrlhf-reward-file", "--reward", "0.7*bleu + 0.3*chrf", "-o", "reward.py"], "wrote"),
    (["swift-plugin", "--reward", "bleu", "-o", "plugin.py"], "--reward_funcs speechgrpo_bleu"),
    (["module-path", "verl"], "verl.py"),
    (["demo", "--help"], "--protocol"),
    (["train", "--help"], "--config"),
    (["data", "synth", "--help"], "--out"),
]
#: (arguments, the extra the one-line refusal must name) for commands that need an extra
REFUSED: list[tuple[list[str], str]] = [
    (["demo"], "train"),
    (["demo", "output_dir=x"], "train"),  # a KEY=VALUE override is parsed (PyYAML) inside the command
    (["build-base"], "train"),
    (["build-base", "output_dir=x"], "train"),
    (["train", "--config", "missing.yaml"], "train"),
    (["train", "model=m", "steps=2"], "train"),
    (["eval", "--model", "m", "--manifest", "x.jsonl"], "train"),
    (["bench", "train"], "train"),
    (["data", "synth", "--out", "synth"], "train"),
    (["serve", "--reward", "bleu"], "server"),
    (["module-path", "evaluate", "bleu"], "evaluate"),
    (["bench", "signal", "--target", "bertscore"], "bertscore"),
]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def build_wheel(out: Path) -> Path:
    done = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)], ROOT)
    if done.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{done.stderr}")
    (wheel,) = out.glob("speechgrpo-*.whl")
    return wheel


def missing_data_files(wheel: Path) -> list[str]:
    """Tracked non-Python files of the package (what it reads at run time) that the wheel lacks."""
    tracked = run(["git", "ls-files", "src/speechgrpo"], ROOT).stdout.split()
    wanted = {path.removeprefix("src/") for path in tracked if not path.endswith(".py")}
    with zipfile.ZipFile(wheel) as archive:
        present = set(archive.namelist())
    return sorted(wanted - present)


def check(work: Path) -> int:
    """Build the wheel, install it alone in a fresh venv under `work`, and run the core CLI commands."""
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    wheel = build_wheel(work / "dist")
    failures += [f"the wheel lacks the package data file {name}" for name in missing_data_files(wheel)]
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    done = run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], work)
    if done.returncode != 0:
        raise SystemExit(f"installing the wheel failed:\n{done.stderr}")
    installed = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"], work).stdout)
    names = {p["name"].lower() for p in installed}
    heavy = sorted(names & {"torch", "transformers", "pyyaml", "bert-score", "aiohttp", "evaluate", "datasets",
                            "pandas"})
    if heavy:
        failures.append(f"the core install pulled optional packages: {', '.join(heavy)}")
    cli = str(env_dir / "bin" / "speechgrpo")
    for arguments, expected in CORE:
        done = run([cli, *arguments], work)
        output = done.stdout + done.stderr
        status = "ok" if done.returncode == 0 and expected in output and "Traceback" not in output else "FAILED"
        print(f"{status:6s} speechgrpo {' '.join(arguments)}  (exit {done.returncode})")
        if status != "ok":
            failures.append(f"speechgrpo {' '.join(arguments)}: exit {done.returncode}, expected {expected!r} in "
                            f"the output:\n{output[-2000:]}")
    for arguments, extra in REFUSED:
        done = run([cli, *arguments], work)
        lines = done.stderr.strip().splitlines()
        hint = f"pip install 'speechgrpo[{extra}]'"
        good = done.returncode == 2 and len(lines) == 1 and hint in lines[0] and "Traceback" not in done.stderr
        print(f"{'ok' if good else 'FAILED':6s} speechgrpo {' '.join(arguments)}  (exit {done.returncode}: "
              f"{lines[-1] if lines else ''})")
        if not good:
            failures.append(f"speechgrpo {' '.join(arguments)}: expected exit 2 and one line naming {hint}, got "
                            f"exit {done.returncode}:\n{done.stderr[-2000:]}")
    for failure in failures:
        print(f"\n{failure}", file=sys.stderr)
    print(f"\ncore install check: {len(CORE) + len(REFUSED)} commands, {len(failures)} failures, "
          f"{time.perf_counter() - started:.0f} s ({work})")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one, removed after)")
    args = parser.parse_args()
    if args.keep:
        return check(Path(args.keep))
    with tempfile.TemporaryDirectory(prefix="speechgrpo-core-") as work:
        return check(Path(work))


if __name__ == "__main__":
    sys.exit(main())
