"""The audit's figure: the ROC curve with the judge's threshold marked and, where the judge gives P(YES), the
reliability plot (`medix judge audit --plot`)."""

from __future__ import annotations

from pathlib import Path


def roc_png(report: dict, path: Path) -> None:
    """The ROC curve (the judge's threshold marked) and, with probabilities, the reliability plot: per P(YES)
    bin, the share of pairs that are positive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if report.get("reliability") else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    if report.get("roc"):
        fpr, tpr = zip(*report["roc"])
        label = "AUC undefined (one label only)" if report.get("auc") is None else f"AUC {report['auc']:.3f}"
        ax.plot(fpr, tpr, marker=".", label=label)
    ax.scatter([report["fpr"] or 0], [report["tpr"] or 0], color="red", zorder=3,
               label=f"threshold {report['threshold']}")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    ax.set_xlabel("false-YES rate (FPR)")
    ax.set_ylabel("true-YES rate (TPR)")
    kinds = ", ".join(report.get("kinds") or [])
    ax.set_title(f"judge audit: {report['judge']['model']}" + (f"\nkinds: {kinds}" if kinds else ""), fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    if panels == 2:
        ax = axes[0][1]
        bins = report["reliability"]
        ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfectly calibrated")
        ax.plot([b["mean_p_yes"] for b in bins], [b["positive_share"] for b in bins], marker="o", label="judge")
        for b in bins:
            ax.annotate(str(b["n"]), (b["mean_p_yes"], b["positive_share"]), fontsize=6,
                        textcoords="offset points", xytext=(3, -8))
        ax.axvline(report["threshold"], color="red", linewidth=1, label=f"threshold {report['threshold']}")
        ax.set_xlabel("P(YES) (bin mean; label: pairs in the bin)")
        ax.set_ylabel("share of pairs that are positive")
        ax.set_title("reliability", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
