"""Plot a training run's health from its CSV log: validation mel distance of the real codes against
shuffled codes, code dependence, and the training mel loss.

usage: python scripts/plot_training_curve.py runs/NAME/version_N/metrics.csv OUT.png [TITLE]

A run resumed across versions: join their CSVs with commas, oldest first
(``runs/X/version_0/metrics.csv,runs/X/version_1/metrics.csv``); a later log replaces the steps it
repeats, and each resume is marked with a dotted line.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path: str, out: str, title: str = "") -> None:
    rows, resumes = [], []
    for part in path.split(","):
        later = list(csv.DictReader(open(part)))
        if rows and later:
            start = min(int(r["step"]) for r in later)
            rows = [r for r in rows if int(r["step"]) < start]
            resumes.append(start)
        rows += later
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
    for axis in (left, right):
        for step in resumes:
            axis.axvline(step, color="0.5", ls=":", lw=0.8)
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
