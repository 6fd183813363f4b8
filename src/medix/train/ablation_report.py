"""`medix ablate report OUT`: the reward ablation side by side — per arm, the per-step mean of every reward
component (the ones it did not train on included: every component is scored and logged whatever its weight),
the volatility of its training reward, the reward-hacking monitor's alerts and the step each fired, and its
held-out scores under ONE evaluation judge with paired 95% intervals against the composite arm of the same seed.

    medix ablate report runs/ablation          # a table; OUT/ablation_report.json and OUT/ablation.png

Volatility: the training reward per step, smoothed by a trailing mean over `window` steps (a rolling mean
of the first w steps uses those it has), then the standard deviation of its step-to-step changes. A
reward that climbs steadily scores low; one that swings up and down scores high — the paper's "instability".
It is computed on each arm's own training reward (what it optimised) and on accuracy_llm (one scale for all).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from medix.errors import MedixError
from medix.rewards import composite as reward
from medix.stats import paired_change
from medix.train.ablation import BASE, AblationPlan, arm_state, read_plan
from medix.train.config import MonitorConfig
from medix.train.monitor import replay
from medix.files import iter_jsonl, read_json

WINDOW = 5
HELD_OUT = ("overall", *reward.names())  # each item's fields compared between arms
COMPARED = "composite"


def read_steps(folder: Path) -> list[dict]:
    """One row per training step from metrics.jsonl (a resumed run logs some steps twice: the last wins)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise MedixError(f"{path}, line {number}: not JSON ({line[:60]!r})") from None
        if "loss" in row and "step" in row:  # a training step (not the final train_runtime line)
            by_step[int(row["step"])] = row
    return [by_step[s] for s in sorted(by_step)]


def smooth(values: list[float], window: int = WINDOW) -> np.ndarray:
    """Trailing mean over `window` steps; NaN steps (nothing logged) are skipped."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return np.array([x[max(0, i - window + 1):i + 1].mean() for i in range(len(x))])


def volatility(values: list[float], window: int = WINDOW) -> float | None:
    """std of the step-to-step changes of the smoothed series; None under 3 steps."""
    s = smooth(values, window)
    return float(np.std(np.diff(s))) if len(s) >= 3 else None


def _series(rows: list[dict], key: str) -> list[float | None]:
    return [row.get(key) for row in rows]


def arm_curves(folder: Path, window: int) -> dict:
    rows = read_steps(folder)
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    monitor = MonitorConfig.model_validate(config.get("monitor") or {})
    curves = {"step": [r["step"] for r in rows], "reward": _series(rows, "reward")}
    curves.update({name: _series(rows, f"rewards/{name}/mean") for name in reward.names()})
    last = {name: next((v for v in reversed(values) if v is not None), None) for name, values in curves.items()
            if name != "step"}
    return {"steps": len(rows), "curves": curves, "last": last,
            "volatility": volatility(curves["reward"], window),
            "volatility_accuracy_llm": volatility(curves["accuracy_llm"], window),
            "alerts": replay(rows, monitor) if monitor.enabled else {}}


def read_held_out(folder: Path) -> tuple[dict, list[dict]] | None:
    if not (folder / "heldout.json").is_file():
        return None
    records = [record for _, record in iter_jsonl(folder / "heldout.jsonl")]
    return read_json(folder / "heldout.json"), records


def _paired(records: list[dict], reference: list[dict]) -> dict:
    """Each field's change against `reference`, items matched by id."""
    by_id = {r["id"]: r for r in reference}
    shared = [r for r in records if r["id"] in by_id]
    return paired_change([by_id[r["id"]] for r in shared], shared, list(HELD_OUT))


def build_report(out: Path, window: int = WINDOW) -> dict:
    plan: AblationPlan = read_plan(out)
    held = {BASE: read_held_out(out / BASE)}
    arms = {}
    for arm in plan.arms:
        folder = out / arm.name
        if not folder.is_dir():
            continue
        info = read_json(folder / "arm.json") if (folder / "arm.json").is_file() else {}
        arms[arm.name] = {"preset": arm.preset, "seed": arm.seed, "state": arm_state(folder),
                          "weights": info.get("weights"), "config_hash": info.get("config_hash"),
                          "shared_hash": info.get("shared_hash"), **arm_curves(folder, window)}
        held[arm.name] = read_held_out(folder)
    if not arms:
        raise MedixError(f"{out}: no arm has started yet (run `medix ablate` with this --output-dir)")
    judges = {name: json.dumps(h[0]["judge"], sort_keys=True) for name, h in held.items() if h}
    if len(set(judges.values())) > 1:
        groups: dict[str, list[str]] = {}
        for name, judge in judges.items():
            groups.setdefault(judge, []).append(name)
        raise MedixError(f"{out}: the held-out answers were scored by different judges ("
                         + "; ".join(", ".join(names) for names in groups.values())
                         + "): delete the heldout.json of the odd ones and run `medix ablate score` again")
    base = None
    for name, h in held.items():
        if not h:
            continue
        if name == BASE:
            base = {"policy": h[0]["policy"], "held_out": h[0]["summary"]}
            continue
        arm = arms[name]
        arm["held_out"] = h[0]["summary"]
        reference = held.get(f"{COMPARED}-s{arm['seed']}")
        if arm["preset"] != COMPARED and reference:
            arm["vs_composite"] = _paired(h[1], reference[1])
    shared = {a["shared_hash"] for a in arms.values() if a.get("shared_hash")}
    return {"output_dir": str(out), "window": window, "eval_judge": plan.eval_judge, "presets": plan.presets,
            "seeds": plan.seeds, "arms": arms, "base": base,
            "same_settings": len(shared) <= 1,
            "judge": next(iter(h[0]["judge"] for h in held.values() if h), None)}


def plot(report: dict, path: Path) -> None:
    """One panel per arm: each component's per-step mean (thin) and the arm's training reward (thick), both
    smoothed as for the volatility; dashed lines at the steps the monitor's alerts fired."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = report["arms"]
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.6), sharey=True, squeeze=False)
    colours = dict(zip(reward.names(), ("tab:blue", "tab:orange", "tab:purple", "tab:green")))
    for ax, (name, arm) in zip(axes[0], arms.items()):
        curves, steps = arm["curves"], arm["curves"]["step"]
        for key in ("reward", *reward.names()):
            values = curves[key]
            kept = [s for s, v in zip(steps, values) if v is not None and not math.isnan(v)]
            if not kept:
                continue
            style = {"color": "black", "linewidth": 2.2, "label": "training reward"} if key == "reward" else \
                {"color": colours[key], "linewidth": 1.1, "label": key}
            ax.plot(kept, smooth(values, report["window"]), **style)
        for condition, step in arm["alerts"].items():
            ax.axvline(step, color="red", linestyle="--", linewidth=1)
            ax.text(step, 0.97, f" {condition}", color="red", fontsize=7, va="top", rotation=90)
        vol = arm["volatility"]
        ax.set(title=f"{name}\nvolatility {vol:.3f}" if vol is not None else name, xlabel="step", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel(f"mean per step (trailing mean of {report['window']})")
    axes[0][0].legend(loc="upper left", fontsize="x-small")
    fig.suptitle("reward ablation: every component per step, by training reward", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out: Path, window: int = WINDOW) -> dict:
    report = build_report(out, window)
    (out / "ablation_report.json").write_text(json.dumps(report, indent=2, default=str))
    plot(report, out / "ablation.png")
    return report
