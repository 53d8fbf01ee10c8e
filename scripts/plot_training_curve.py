"""Plot a training run's health from its CSV log: validation mel distance of the real codes against
shuffled codes, code dependence, and the training mel loss.

usage: python scripts/plot_training_curve.py runs/NAME/version_N/metrics.csv OUT.png [TITLE]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path: str, out: str, title: str = "") -> None:
    rows = list(csv.DictReader(open(path)))
    val = [(int(r["step"]), float(r["val/mel_distance"]), float(r["val/mel_shuffled"]), float(r["val/code_dependence"]))
           for r in rows if r.get("val/code_dependence")]
    train = [(int(r["step"]), float(r["train/mel"])) for r in rows if r.get("train/mel")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot([s for s, _ in train], [m for _, m in train], color="0.7", lw=0.8, label="train mel (3-scale)")
    left.set_xlabel("generator step")
    left.set_ylabel("train loss")
    twin = left.twinx()
    twin.plot([v[0] for v in val], [v[1] for v in val], "o-", color="tab:blue", label="val mel distance: real codes")
    twin.plot([v[0] for v in val], [v[2] for v in val], "s--", color="tab:red", label="val mel distance: shuffled codes")
    twin.set_ylabel("validation mel distance (lower is better)")
    lines = left.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    twin.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")
    right.plot([v[0] for v in val], [v[3] for v in val], "o-", color="tab:green")
    right.axhline(0.05, color="tab:red", ls=":", label="warning threshold (decoder ignores codes)")
    right.set_ylim(bottom=0)
    right.set_xlabel("generator step")
    right.set_ylabel("val code dependence")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:4])
