"""`medix review report`: what the experts said, unblinded — preference with its interval, agreement between
reviewers, and the LLM judge of the eval runs measured against the experts.

    report = build_report(ReviewStore.open("review.sqlite"))
    print(text_report(report)); html_report(report)        # the HTML page embeds its plots (PNG, base64)
    audit_rows(store)                                       # rows for `medix judge audit --pairs`

Conventions (docs/review.md says why):
- Preference of model 1 over model 2, two ways. *Decisive*: wins / (wins + losses), ties and "both wrong" left
  out, 95% Wilson interval over the reviews (the reviews of one item counted as independent). *Ties half*: each
  review scores 1 (model 1 better), 0 (model 2 better) or 0.5 (tie or both wrong); the mean over items of each
  item's mean, with a 95% percentile bootstrap over items (1000 resamples, seed 0), so an item seen by three
  reviewers weighs as much as one seen by one.
- Agreement: labels per item as the reviewers gave them (pairwise: model 1 better / model 2 better / tie / both
  wrong; grading: correct / partial / incorrect). Cohen's κ per pair of reviewers over the items both reviewed;
  Fleiss' κ over the items with the most common number of reviews (≥ 2); Krippendorff's α (nominal; grading also
  ordinal, incorrect < partial < correct) over every item with two or more reviews.
- Experts against the judge: the experts' label of an item is the majority of its reviews (a tie between labels
  is no label). Grading: correct = YES, incorrect = NO; partial is left out of κ and reported on its own. The
  judge says YES when its normalised verdict is ≥ 0.5 (binary: 1; rubric: a mean score of 2.5 / 5 or more).
  Pairwise: the judge's verdicts on the two answers give its own outcome (only one answer YES: that one is
  better; both YES: tie; both NO: both wrong), compared with the experts' outcome. The only absolute label a
  pairwise review gives is "both wrong" ⇒ both answers incorrect: those answers are what the audit export holds.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np

from medix.review.stats import cohen_kappa, fleiss_kappa, krippendorff_alpha, wilson
from medix.review.store import KINDS, ReviewStore
from medix.stats import bootstrap_means, interval

OUTCOMES = ("model 1 better", "model 2 better", "tie", "both wrong")
GRADE_ORDER = ("incorrect", "partial", "correct")
_SCORE = {"model 1 better": 1.0, "model 2 better": 0.0, "tie": 0.5, "both wrong": 0.5}


def _reviews(store: ReviewStore) -> list[dict]:
    """Every review joined with its item and the hidden mapping, the choice turned into its unblinded label."""
    rows = store.rows("SELECT r.reviewer, r.choice, r.comment, i.key, i.task, i.item_id, i.modality, i.answer_type, "
                      "i.question, i.reference, i.answer_a, i.answer_b, h.slot_a, h.verdict_a, h.verdict_b, "
                      "h.judge_kind FROM reviews r JOIN items i ON i.key = r.item JOIN hidden h ON h.item = i.key "
                      "ORDER BY r.id")
    out = []
    for row in map(dict, rows):
        if row["answer_b"] is not None:  # pairwise: A / B are positions; slot_a says which model A was
            a_is_first = row["slot_a"] == 1
            row["label"] = {"A": OUTCOMES[0 if a_is_first else 1], "B": OUTCOMES[1 if a_is_first else 0],
                            "tie": "tie", "both_wrong": "both wrong"}[row["choice"]]
        else:
            row["label"] = row["choice"]
        out.append(row)
    return out


def _preference(reviews: list[dict]) -> dict:
    counts = Counter(r["label"] for r in reviews)
    wins, losses = counts["model 1 better"], counts["model 2 better"]
    decisive = wins + losses
    by_item: dict[int, list[float]] = defaultdict(list)
    for r in reviews:
        by_item[r["key"]].append(_SCORE[r["label"]])
    item_means = np.array([np.mean(v) for v in by_item.values()])
    low_high = interval(bootstrap_means(item_means, 1000, np.random.default_rng(0)))
    return {"reviews": len(reviews), "items": len(by_item), **{k.replace(" ", "_"): counts[k] for k in OUTCOMES},
            "decisive": {"share": wins / decisive if decisive else None, "n": decisive,
                         "ci_wilson": list(wilson(wins, decisive)) if decisive else None},
            "ties_half": {"share": float(item_means.mean()) if len(item_means) else None,
                          "ci_bootstrap": low_high}}


def _breakdowns(reviews: list[dict], summarise) -> dict:
    out = {}
    for column in ("task", "modality", "answer_type"):
        groups = defaultdict(list)
        for r in reviews:
            groups[r[column]].append(r)
        out[column] = {name: summarise(group) for name, group in sorted(groups.items())}
    return out


def _grades(reviews: list[dict]) -> dict:
    counts = Counter(r["label"] for r in reviews)
    n = len(reviews)
    return {"reviews": n, **{g: counts[g] for g in GRADE_ORDER},
            "accuracy": counts["correct"] / n if n else None,
            "ci_wilson": list(wilson(counts["correct"], n)) if n else None,
            "accuracy_partial_half": (counts["correct"] + 0.5 * counts["partial"]) / n if n else None}


def _agreement(reviews: list[dict], kind: str) -> dict:
    labels: dict[int, dict[str, str]] = defaultdict(dict)
    for r in reviews:
        labels[r["key"]][r["reviewer"]] = r["label"]
    reviewers = sorted({r["reviewer"] for r in reviews})
    overlap = {key: by for key, by in labels.items() if len(by) >= 2}
    pairs = []
    for first, second in combinations(reviewers, 2):
        shared = [by for by in labels.values() if first in by and second in by]
        if shared:
            a, b = [by[first] for by in shared], [by[second] for by in shared]
            pairs.append({"reviewers": [first, second], "n": len(shared), "kappa": cohen_kappa(a, b),
                          "agreement": sum(x == y for x, y in zip(a, b)) / len(shared)})
    sizes = Counter(len(by) for by in overlap.values())
    fleiss = None
    if sizes:
        m = max(sizes, key=lambda s: (sizes[s], s))
        categories = OUTCOMES if kind == "pairwise" else GRADE_ORDER
        table = np.array([[list(by.values()).count(c) for c in categories] for by in overlap.values() if len(by) == m])
        fleiss = {"kappa": fleiss_kappa(table), "items": len(table), "raters_per_item": m}
    units = {key: list(by.values()) for key, by in overlap.items()}
    return {"reviewers": reviewers, "overlapping_items": len(overlap), "cohen_pairs": pairs,
            "cohen_kappa": pairs[0]["kappa"] if len(reviewers) == 2 and pairs else None,
            "fleiss": fleiss, "alpha_nominal": krippendorff_alpha(units),
            "alpha_ordinal": krippendorff_alpha(units, order=GRADE_ORDER) if kind == "grading" else None}


def _consensus(reviews: list[dict]) -> dict[int, tuple[str | None, dict]]:
    """item → (the majority label or None on a tie, one of its review rows)."""
    by_item: dict[int, list[dict]] = defaultdict(list)
    for r in reviews:
        by_item[r["key"]].append(r)
    out = {}
    for key, group in by_item.items():
        ranked = Counter(r["label"] for r in group).most_common()
        top = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
        out[key] = (top, group[0])
    return out


def _yes(verdict: float | None) -> bool | None:
    return None if verdict is None else verdict >= 0.5


def _judge_label(row: dict, kind: str) -> str | None:
    a, b = _yes(row["verdict_a"]), _yes(row["verdict_b"])
    if kind == "grading":
        return None if a is None else ("YES" if a else "NO")
    if a is None or b is None:
        return None
    first, second = (a, b) if row["slot_a"] == 1 else (b, a)
    return OUTCOMES[0] if first and not second else OUTCOMES[1] if second and not first else (
        "tie" if first else "both wrong")


def _judge_vs_experts(reviews: list[dict], kind: str) -> dict:
    expert_map = {"correct": "YES", "incorrect": "NO"} if kind == "grading" else {o: o for o in OUTCOMES}
    categories = ("YES", "NO") if kind == "grading" else OUTCOMES
    pairs, partial, no_consensus, no_verdict, disagreements = [], Counter(), 0, 0, []
    for label, row in _consensus(reviews).values():
        judge = _judge_label(row, kind)
        if label is None:
            no_consensus += 1
        elif judge is None:
            no_verdict += 1
        elif label == "partial":
            partial[judge] += 1
        else:
            pairs.append((expert_map[label], judge))
            if expert_map[label] != judge:
                disagreements.append({"task": row["task"], "item_id": row["item_id"], "experts": expert_map[label],
                                      "judge": judge, "question": row["question"][:160]})
    confusion = [[sum(1 for e, j in pairs if e == ec and j == jc) for jc in categories] for ec in categories]
    return {"n": len(pairs), "agreement": sum(e == j for e, j in pairs) / len(pairs) if pairs else None,
            "kappa": cohen_kappa([e for e, _ in pairs], [j for _, j in pairs]) if pairs else None,
            "categories": list(categories), "confusion": confusion, "no_consensus": no_consensus,
            "no_verdict": no_verdict, "partial_judged": dict(partial), "disagreements": disagreements[:50]}


def build_report(store: ReviewStore) -> dict:
    settings = store.settings()
    reviews = _reviews(store)
    runs = [{"slot": r["slot"], "model": r["model"], "path": r["path"], "judge": json.loads(r["judge"] or "null")}
            for r in store.rows("SELECT * FROM runs ORDER BY slot")]
    report = {"set": str(store.path), "kind": settings.kind, "k": settings.k, "runs": runs,
              "progress": store.progress(), "agreement": _agreement(reviews, settings.kind),
              "judge_vs_experts": _judge_vs_experts(reviews, settings.kind)}
    summarise = _preference if settings.kind == "pairwise" else _grades
    report["overall"] = summarise(reviews)
    report["breakdowns"] = _breakdowns(reviews, summarise)
    return report


def audit_rows(store: ReviewStore) -> list[dict]:
    """Expert-labelled (question, reference, candidate, label, source) rows, the `medix judge audit --pairs`
    format: grading items whose experts agree on correct (true) or incorrect (false); both answers of a pairwise
    item whose experts agree they are both wrong (false)."""
    kind = store.settings().kind
    rows = []
    for label, row in _consensus(_reviews(store)).values():
        # kind: the audit's table shows these pairs as one kind; group: an item's pairs share a calibration fold
        base = {"question": row["question"], "reference": row["reference"], "kind": f"expert {kind}",
                "group": f"{row['task']}:{row['item_id']}"}
        if kind == "grading" and label in ("correct", "incorrect"):
            rows.append({**base, "candidate": row["answer_a"], "label": label == "correct",
                         "source": f"expert grading: {row['task']}"})
        elif kind == "pairwise" and label == "both wrong":
            rows += [{**base, "candidate": row[f"answer_{x}"], "label": False,
                      "source": f"expert pairwise both wrong: {row['task']}"} for x in ("a", "b")]
    return rows


def _pct(value, ci=None) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def summary_lines(report: dict) -> list[str]:
    """The report as text lines (the CLI prints them; the HTML page shows the same)."""
    lines = [f"review set {report['set']}: {report['kind']}, {report['progress']['reviews']} reviews of "
             f"{report['progress']['items']} items ({report['progress']['complete']} with k = {report['k']})"]
    lines += [f"model {r['slot']}: {r['model']}  ({r['path']})" for r in report["runs"]]
    lines += _headline(report["overall"], report["kind"], "overall")
    for column, groups in report["breakdowns"].items():
        for name, summary in groups.items():
            lines += _headline(summary, report["kind"], f"{column} {name}")
    a = report["agreement"]
    lines.append(f"agreement: {len(a['reviewers'])} reviewers, {a['overlapping_items']} items reviewed by two or more")
    for pair in a["cohen_pairs"]:
        lines.append(f"  Cohen's kappa {pair['reviewers'][0]} / {pair['reviewers'][1]}: {_num(pair['kappa'])} "
                     f"over {pair['n']} items (raw agreement {_pct(pair['agreement'])})")
    if a["fleiss"]:
        lines.append(f"  Fleiss' kappa: {_num(a['fleiss']['kappa'])} over {a['fleiss']['items']} items with "
                     f"{a['fleiss']['raters_per_item']} reviews each")
    lines.append(f"  Krippendorff's alpha (nominal): {_num(a['alpha_nominal'])}"
                 + (f"; ordinal: {_num(a['alpha_ordinal'])}" if a["alpha_ordinal"] is not None else ""))
    j = report["judge_vs_experts"]
    lines.append(f"LLM judge vs experts: {j['n']} items, agreement {_pct(j['agreement'])}, kappa {_num(j['kappa'])} "
                 f"(no expert majority: {j['no_consensus']}, no judge verdict: {j['no_verdict']})")
    lines.append("  confusion (rows experts, columns judge): " + "; ".join(
        f"{e}: " + ", ".join(f"{c}={n}" for c, n in zip(j["categories"], row))
        for e, row in zip(j["categories"], j["confusion"])))
    if j["partial_judged"]:
        lines.append(f"  items the experts called partially correct, judged: {j['partial_judged']}")
    lines += [f"  disagree: {d['task']} {d['item_id']}: experts {d['experts']}, judge {d['judge']}"
              for d in j["disagreements"][:10]]
    return lines


def _headline(summary: dict, kind: str, name: str) -> list[str]:
    if kind == "pairwise":
        d, t = summary["decisive"], summary["ties_half"]
        return [f"{name}: model 1 preferred {_pct(d['share'], d['ci_wilson'])} of {d['n']} decisive reviews "
                f"(Wilson 95%); ties half {_pct(t['share'], t['ci_bootstrap'])} (bootstrap 95%); "
                f"{summary['model_1_better']} / {summary['model_2_better']} / {summary['tie']} tie / "
                f"{summary['both_wrong']} both wrong"]
    return [f"{name}: experts' accuracy {_pct(summary['accuracy'], summary['ci_wilson'])} (Wilson 95%) over "
            f"{summary['reviews']} reviews; partial half {_pct(summary['accuracy_partial_half'])}; "
            f"{summary['correct']} correct / {summary['partial']} partial / {summary['incorrect']} incorrect"]


def text_report(report: dict) -> str:
    return "\n".join(summary_lines(report)) + "\n"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = report["breakdowns"]["task"]
    names = ["overall", *tasks]
    summaries = [report["overall"], *tasks.values()]
    if report["kind"] == "pairwise":
        values = [s["ties_half"]["share"] for s in summaries]
        cis = [s["ties_half"]["ci_bootstrap"] for s in summaries]
        title = "model 1 preferred (ties half), 95% bootstrap interval"
    else:
        values = [s["accuracy"] for s in summaries]
        cis = [s["ci_wilson"] for s in summaries]
        title = "experts' accuracy, 95% Wilson interval"
    values = [np.nan if v is None else v for v in values]
    err = np.array([[v - c[0], c[1] - v] if c and v == v else [0, 0] for v, c in zip(values, cis)]).T
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    left.barh(names, values, xerr=err, color="#4c72b0")
    left.set_xlim(0, 1)
    left.set_title(title, fontsize=9)
    j = report["judge_vs_experts"]
    right.imshow(np.array(j["confusion"]), cmap="Blues")
    right.set_xticks(range(len(j["categories"])), j["categories"], rotation=30, fontsize=8)
    right.set_yticks(range(len(j["categories"])), j["categories"], fontsize=8)
    for (y, x), n in np.ndenumerate(np.array(j["confusion"])):
        right.text(x, y, str(n), ha="center", va="center")
    right.set_xlabel("LLM judge")
    right.set_ylabel("experts")
    right.set_title("LLM judge vs experts' majority", fontsize=9)
    png = _png(figure)
    plt.close(figure)
    return [png]


def html_report(report: dict) -> str:
    """One self-contained page: the summary, the plots (embedded PNG) and the report as JSON. Unblinded."""
    images = "".join(f'<img alt="plot" src="data:image/png;base64,{png}">' for png in _plots(report))
    text = html.escape(text_report(report))
    data = html.escape(json.dumps(report, indent=1, ensure_ascii=False))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>medix review report</title></head><body>"
            f"<h1>Expert review — {html.escape(report['kind'])}</h1><p><b>Unblinded</b>: this page names the models."
            f" Research use only.</p><pre>{text}</pre>{images}<details><summary>all numbers (JSON)</summary>"
            f"<pre>{data}</pre></details></body></html>")


__all__ = ["KINDS", "audit_rows", "build_report", "html_report", "text_report"]
