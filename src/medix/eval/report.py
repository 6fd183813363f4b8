"""The human-readable outputs of a scored run: scores.md, scores.png and report.html.

They are rendered from the scores.json body written by the score phase (`medix.eval.score`), which keeps
the keys the web demo reads ({"tasks": {task: {"score", "n"}}, "overall"}) and adds intervals, group means,
failure counts, breakdowns, the model and the judge identity.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Callable

from medix.eval.protocol import PROTOCOLS
from medix.eval.records import GenerationRecord, JsonlStore, JudgmentRecord, generations_path, judgments_path

DISCLAIMER = "Research use only; not for clinical decisions."


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def markdown_table(scores: dict) -> str:
    lines = ["| task | group | metric | score (%) | 95% CI | n | judge fail | gen fail | parse fail | no image |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, t in scores["tasks"].items():
        label = f"{name} (stand-in for {t['stand_in_for']})" if t.get("stand_in_for") else name
        lines.append(f"| {label} | {t['group']} | {t['metric']} | {_pct(t['score'])} | {_ci(t.get('ci'))} | {t['n']} "
                     f"| {t['judge_failures']} | {t['generation_failures']} | {t['parse_failures']} "
                     f"| {t.get('image_missing', 0)} |")
    for label in ("llm", "vlm", "overall"):
        lines.append(f"| **{label}** | | mean over tasks | **{_pct(scores.get(label))}** | "
                     f"{_ci(scores.get(label + '_ci'))} | | | | | |")
    notes = run_notes(scores)
    if notes:
        lines += ["", *notes]
    if scores.get("protocol"):
        lines += ["", f"Protocol: {scores['protocol']}; {_failures_line(scores)}. "
                  "Stand-in tasks are listed but not in the means."]
    notes = [f"{name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in t["data"].items()
                                      if isinstance(v, int) and v)
             for name, t in scores["tasks"].items()
             if any(isinstance(v, int) and v for v in (t.get("data") or {}).values())]
    if notes:
        lines += ["", "Data (bad rows are skipped at load, see data_checks.json): " + "; ".join(notes)]
    skipped = scores.get("skipped") or {}
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())]
    return "\n".join(lines) + f"\n\n{DISCLAIMER}\n"


def run_notes(scores: dict) -> list[str]:
    """What the table alone does not say: VLM items without their image (failed by default, or asked
    text-only on purpose), and items of this task list that have no verdict yet."""
    text_only = scores.get("asked_without_image") or {}
    failed = {t: e["image_missing"] - e.get("asked_without_image", 0) for t, e in scores["tasks"].items()
              if e.get("image_missing", 0) - e.get("asked_without_image", 0) > 0}
    notes = []
    if text_only:
        notes.append("TEXT-ONLY (--allow-text-only): " + ", ".join(f"{t} {n} of {scores['tasks'][t]['n']}"
                     for t, n in text_only.items()) + " items were asked WITHOUT their image; those scores do "
                     "not measure image understanding.")
    if failed:
        notes.append("Images missing: " + ", ".join(f"{t} {n}" for t, n in failed.items()) + " items had no "
                     "image and are failed generations (gen fail), not asked text-only; provide the images "
                     "(docs/eval.md) or pass --allow-text-only on purpose.")
    unjudged = scores.get("unjudged") or {}
    if unjudged:
        notes.append("Not judged yet (left out of the scores): " + ", ".join(f"{t} {n}" for t, n in unjudged.items())
                     + " items; run the judge phase to include them.")
    return notes


def _failures_line(scores: dict) -> str:
    """"5 judge failures, 0 generation failures (counted as 0 ...)", plus items never judged."""
    tasks = scores["tasks"].values()
    judge = sum(t.get("judge_failures", 0) for t in tasks)
    generation = sum(t.get("generation_failures", 0) for t in tasks)
    protocol = PROTOCOLS.get(scores.get("protocol"))
    counted = "counted as " if protocol is not None and protocol.failures_count_zero else ""
    line = (f"{judge} judge failure(s) and {generation} generation failure(s), "
            f"{counted}{scores.get('failures_counted_as')}")
    missing = sum(t.get("not_judged", 0) for t in tasks)
    if missing and not scores.get("unjudged"):  # else run_notes names them per task
        line += f"; {missing} generated item(s) not judged yet (re-run the judge phase to finish)"
    return line


def chart_png(scores: dict) -> bytes:
    """Horizontal bars with 95% interval whiskers, one per task plus the group means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, t["score"], t.get("ci"), t["group"]) for n, t in scores["tasks"].items() if t["score"] is not None]
    rows += [(g, scores.get(g), scores.get(g + "_ci"), "mean") for g in ("llm", "vlm", "overall")
             if scores.get(g) is not None]
    colors = {"llm": "#4c72b0", "vlm": "#dd8452", "mean": "#55a868"}
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = list(range(len(rows)))[::-1]
    values = [100 * r[1] for r in rows]
    errors = [[100 * (r[1] - r[2][0]) if r[2] else 0 for r in rows],
              [100 * (r[2][1] - r[1]) if r[2] else 0 for r in rows]]
    ax.barh(y, values, xerr=errors, color=[colors[r[3]] for r in rows], capsize=3)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (%) with 95% bootstrap interval")
    ax.set_title(f"{scores.get('model', '')} — judge {scores.get('judge', {}).get('model', '')}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _samples_html(records: "Records", task: str, count: int) -> str:
    generations, judgments = records(task)
    gens = {g.id: g for g in generations}
    rows = []
    for j in judgments[:count]:
        gen = gens.get(j["id"])
        raw = (gen.raw if gen else None) or ""
        verdict = j["error"] or j["note"] or f"{j['score']} (rounds {j['rounds']})"
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            j["id"], (gen.question if gen else "")[:300], j["reference"][:300],
            raw[:600], j["candidate"][:300], verdict)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("id", "question", "reference", "response", "judged answer", "verdict"))
    return f"<details><summary>{html.escape(task)}</summary><table><tr>{head}</tr>{''.join(rows)}</table></details>"


Records = Callable[[str], "tuple[list[GenerationRecord], list[dict]]"]  # task -> (generations, judgments)


def _records(out: Path, judge_key: str, generations: dict | None, judgments: dict | None) -> Records:
    """The records the run already holds, else read from OUT (a report of a folder scored elsewhere)."""
    def get(task: str):
        gens = (generations or {}).get(task)
        if gens is None:
            gens = JsonlStore(generations_path(out, task)).read_models(GenerationRecord)
        found = (judgments or {}).get(task)
        if found is None:
            found = JsonlStore(judgments_path(out, judge_key, task)).read_as(JudgmentRecord)
        return gens, found
    return get


def report_html(scores: dict, png: bytes, records: Records, samples: int) -> str:
    paragraphs = markdown_table(scores).split("\n\n")
    table_md = paragraphs[0].splitlines()
    header, body = table_md[0], table_md[2:]
    warnings = run_notes(scores)  # in red; the other paragraphs after the table as scores.md has them
    extra = [p.strip() for p in paragraphs[1:]
             if p.strip() and p.strip() != DISCLAIMER and not set(p.strip().splitlines()) <= set(warnings)]
    notes = "".join(f"<p class=warn>{html.escape(n)}</p>" for n in warnings) + "".join(
        f"<p>{html.escape(p)}</p>" for p in extra)
    def cells(line: str, tag: str) -> str:
        return "".join(f"<{tag}>{html.escape(c.strip().strip('*'))}</{tag}>" for c in line.strip("|").split("|"))

    table = f"<table><tr>{cells(header, 'th')}</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in body) + "</table>"
    sample_blocks = "".join(_samples_html(records, t, samples) for t in scores["tasks"])
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top} .warn{color:#a00}")
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>medix eval — {html.escape(scores['model'])}</title>"
            f"<style>{style}</style></head><body><h1>medix eval: {html.escape(scores['model'])}</h1>"
            f"<p class='warn'>{DISCLAIMER}</p><p>Judge: <code>{html.escape(json.dumps(scores['judge']))}</code></p>"
            f"<img alt='scores chart' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
            f"<h2>Scores</h2>{table}{notes}<h2>Sample responses and verdicts</h2>{sample_blocks}</body></html>")


def write_report(out: Path, scores: dict, report_samples: int, generations: dict | None = None,
                 judgments: dict | None = None) -> str:
    """scores.md, scores.png and report.html from a scores.json body (see `medix.eval.score.run_score`);
    returns scores.md's text. `generations` / `judgments`: the run's records by task (else read from OUT)."""
    table = markdown_table(scores)
    (out / "scores.md").write_text(table, encoding="utf-8")
    if scores["tasks"]:
        png = chart_png(scores)
        (out / "scores.png").write_bytes(png)
        records = _records(out, scores["judge_key"], generations, judgments)
        (out / "report.html").write_text(report_html(scores, png, records, report_samples), encoding="utf-8")
    return table
