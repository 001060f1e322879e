"""Tables, figures and files of a study (:func:`write_study`).

Output folder layout (``DIR``):

``report.md``
    tables of accuracy per scenario x mitigation (mean +- std over seeds), the
    dot-product distortion per non-ideality with the share of the accuracy loss BN
    tuning recovers, and the costs of the mitigations;
``drift.png``, ``distortion.png``, ``wires.png``, ``recovery.png``
    accuracy vs drift time per mitigation; ideal vs simulated dot products per
    non-ideality; accuracy vs tile size and wire resistance; recovered accuracy vs the
    absorbable share of the distortion;
``accuracy.csv``, ``costs.csv``, ``distortion.csv``
    one row per measurement (every seed);
``summary.csv``
    accuracy mean, std and count per scenario x time x mitigation;
``distortion_samples.h5``
    the scatter points (``/<k>/y_ideal, y_hw, gain, offset, column`` with the scenario
    and layer as attributes).

The folder is written to a temporary sibling and renamed at the end, so an interrupted
run leaves no partial report.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from collections import defaultdict

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.tune.study import DRIFT_LABELS, MITIGATIONS

__all__ = ["summarize", "distortion_summary", "cost_summary", "write_study", "prepare_output",
           "MITIGATION_LABELS"]

MITIGATION_LABELS = {
    "none": "none", "drift_comp": "global drift comp.", "bn_recal": "BN recalibration",
    "bn_recal_tune": "BN recal. + tuning", "retrain": "noise-aware retraining",
    "retrain_recal": "retraining + BN recal.",
}


def _mean_std(values):
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def _label(scenario, t, multi):
    return f"{scenario} {DRIFT_LABELS.get(t, f'{t:g} s')}" if multi else scenario


def summarize(results):
    """``{(label, mitigation): (mean, std, n)}`` of accuracy and the ordered labels.

    ``label`` is the scenario name, with the drift time for scenarios read at several
    times; std is the sample standard deviation over seeds (ddof = 1).
    """
    multi = {sc.name: len(sc.times) > 1 for sc in results.scenarios}
    groups = defaultdict(list)
    order = []
    for row in results.accuracy:
        label = _label(row["scenario"], row["t_inference"], multi.get(row["scenario"], False))
        if label not in order:
            order.append(label)
        groups[label, row["mitigation"]].append(row["accuracy"])
    return {key: _mean_std(v) for key, v in groups.items()}, order


def distortion_summary(results):
    """Per scenario label: mean +- std over seeds of the distortion averaged over the
    layers followed by batchnorm: ``{label: dict(nmse_total, nmse_residual, absorbable)}``
    each a (mean, std, n) triple."""
    per_seed = defaultdict(lambda: defaultdict(list))
    order = []
    for row in results.distortion:
        if not row["followed_by_bn"]:
            continue
        if row["scenario"] not in order:
            order.append(row["scenario"])
        per_seed[row["scenario"], row["seed"]]["nmse_total"].append(row["nmse_total"])
        per_seed[row["scenario"], row["seed"]]["nmse_residual"].append(row["nmse_residual"])
        per_seed[row["scenario"], row["seed"]]["absorbable"].append(row["absorbable"])
    out = {}
    for label in order:
        seeds = [v for (lab, _), v in per_seed.items() if lab == label]
        out[label] = {key: _mean_std([np.mean(s[key]) for s in seeds])
                      for key in ("nmse_total", "nmse_residual", "absorbable")}
    return out


def cost_summary(results):
    """Per method: mean wall time and the (constant) sizes of the mitigation runs."""
    groups = defaultdict(list)
    for row in results.costs:
        groups[row["method"]].append(row)
    out = {}
    for method, rows in groups.items():
        out[method] = dict(
            runs=len(rows), seconds=_mean_std([r["seconds"] for r in rows]),
            steps=int(np.median([r["steps"] for r in rows])),
            samples_seen=int(np.median([r["samples_seen"] for r in rows])),
            calibration_samples=int(np.median([r["calibration_samples"] for r in rows])),
            trainable_parameters=int(np.median([r["trainable_parameters"] for r in rows])),
            optimizer_bytes=int(np.median([r["optimizer_bytes"] for r in rows])),
        )
    return out


def recovered_fraction(acc, label, reference, n_test):
    """Share of the accuracy lost (vs the software model) that BN recalibration + tuning
    win back: ``(acc_tuned - acc_none) / (acc_software - acc_none)``; None when the loss
    is under 2 test samples."""
    none = acc.get((label, "none"))
    tuned = acc.get((label, "bn_recal_tune"))
    if none is None or tuned is None:
        return None
    loss = reference - none[0]
    if loss < 2.0 / n_test:
        return None
    return (tuned[0] - none[0]) / loss


# ----------------------------------------------------------------------------- files
def _write_csv(path, rows):
    if not rows:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("")
        return
    keys = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (bool(v) if isinstance(v, np.bool_) else
                                 float(v) if isinstance(v, np.floating) else v) for k, v in row.items()})


def _write_samples(path, results):
    import h5py

    with h5py.File(path, "w") as fh:
        fh.attrs["format"] = "xbarref.study.distortion_samples"
        fh.attrs["description"] = ("ideal (y_ideal) vs simulated (y_hw) outputs of one analog layer per "
                                   "scenario (seed 0), with the per-column least-squares gain and offset "
                                   "of y_ideal ~ gain * y_hw + offset of each point's column")
        for i, (label, (layer, y_ideal, y_hw, gain, offset, cols)) in enumerate(results.scatter.items()):
            g = fh.create_group(str(i))
            g.attrs["scenario"] = label
            g.attrs["layer"] = layer
            for name, arr in (("y_ideal", y_ideal), ("y_hw", y_hw), ("gain", gain), ("offset", offset),
                              ("column", cols)):
                g.create_dataset(name, data=np.asarray(arr))


def prepare_output(out_dir, overwrite=False):
    """Check ``out_dir`` can be written (before any long computation); returns its path."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        raise XbarrefError(f"-o: the parent folder {parent} does not exist")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise XbarrefError(f"-o: {out_dir} exists and is not a folder")
        if os.listdir(out_dir) and not overwrite:
            raise XbarrefError(f"-o: {out_dir} exists and is not empty (use --overwrite to replace it)")
    if not os.access(parent, os.W_OK):
        raise XbarrefError(f"-o: cannot write in {parent}")
    return out_dir


def write_study(results, out_dir, *, header=None, overwrite=False):
    """Write every artifact of ``results`` to ``out_dir`` (atomically: temporary folder,
    then rename). ``header``: lines (Markdown) put at the top of ``report.md``.
    Returns the folder path."""
    out_dir = prepare_output(out_dir, overwrite)
    tmp = tempfile.mkdtemp(prefix=".tmp-study-", dir=os.path.dirname(out_dir))
    try:
        _write_csv(os.path.join(tmp, "accuracy.csv"), results.accuracy)
        _write_csv(os.path.join(tmp, "costs.csv"), results.costs)
        _write_csv(os.path.join(tmp, "distortion.csv"), results.distortion)
        acc, order = summarize(results)
        _write_csv(os.path.join(tmp, "summary.csv"), [
            dict(scenario=label, mitigation=mit, mean=v[0], std=v[1], n=v[2])
            for label in order for mit in MITIGATIONS if (v := acc.get((label, mit))) is not None])
        _write_samples(os.path.join(tmp, "distortion_samples.h5"), results)
        figures = _figures(results, tmp)
        with open(os.path.join(tmp, "report.md"), "w", encoding="utf-8") as fh:
            fh.write(report_markdown(results, header=header, figures=figures))
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".old-study-", dir=os.path.dirname(out_dir))
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# ----------------------------------------------------------------------------- markdown
def _pct(v):
    return f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}"


def report_markdown(results, header=None, figures=()):
    """The text of ``report.md``."""
    acc, order = summarize(results)
    ref = results.reference
    n_test = ref.get("test_samples", 0)
    s = results.settings
    lines = list(header or [])
    lines += [
        "",
        f"Software accuracy (digital model): **{100 * ref['software']:.2f} %**; on the `ideal` "
        f"hardware preset: {100 * ref['ideal_hardware']:.2f} % ({n_test} test samples). "
        f"Every cell is mean ± sample std over {s.seeds} seeds (hardware sample, read noise, "
        f"calibration set and minibatches), in % test accuracy. Study wall time "
        f"{results.seconds:.0f} s.",
        "",
        "## Accuracy per scenario and mitigation",
        "",
        "| scenario | " + " | ".join(MITIGATION_LABELS[m] for m in MITIGATIONS) + " |",
        "|---|" + "---:|" * len(MITIGATIONS),
    ]
    for label in order:
        cells = [(_pct(acc[label, m]) if (label, m) in acc else "—") for m in MITIGATIONS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`—`: not run (drift compensation only where there is drift; retraining only where "
        "marked, it is the expensive baseline). Only the `global drift comp.` column uses the "
        "compensation scale; the others run on raw hardware outputs.",
        "",
        "## Dot-product distortion: what batchnorm can absorb",
        "",
        "Per analog layer followed by batchnorm, ideal vs simulated outputs on the inputs the "
        "layer sees in the ideal network; `NMSE` is the squared error summed over columns "
        "divided by the summed variance of the ideal outputs, before and after the best "
        "per-column gain and offset (least squares). `absorbable` = 1 - residual / total. "
        "Mean over those layers, then mean ± std over seeds. `recovered` = share of the "
        "accuracy lost vs the software model that BN recalibration + tuning win back "
        "(only where the loss is at least 2 test samples).",
        "",
        "| scenario | NMSE total | NMSE residual | absorbable | accuracy loss (none) | loss after BN recal. + tuning | recovered |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    dist = distortion_summary(results)
    for label, d in dist.items():
        none, tuned = acc.get((label, "none")), acc.get((label, "bn_recal_tune"))
        rec = recovered_fraction(acc, label, ref["software"], max(n_test, 1))
        loss = "—" if none is None else f"{100 * (ref['software'] - none[0]):.1f}"
        loss_t = "—" if tuned is None else f"{100 * (ref['software'] - tuned[0]):.1f}"
        lines.append(
            f"| {label} | {d['nmse_total'][0]:.2e} ± {d['nmse_total'][1]:.1e} | "
            f"{d['nmse_residual'][0]:.2e} ± {d['nmse_residual'][1]:.1e} | "
            f"{d['absorbable'][0]:.3f} ± {d['absorbable'][1]:.3f} | {loss} | {loss_t} | "
            f"{'—' if rec is None else f'{rec:.2f}'} |")
    lines += [
        "",
        "## Cost of the mitigations",
        "",
        "| method | runs | wall time per run, s | steps | samples through the hardware | "
        "calibration / training samples | trainable parameters | optimizer memory, bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"bn_recalibration": "BN recalibration (running statistics)",
             "bn_tuning": "BN tuning (gamma, beta; Adam)", "retraining": "noise-aware retraining (all; Adam)"}
    for method, c in cost_summary(results).items():
        lines.append(f"| {names.get(method, method)} | {c['runs']} | {c['seconds'][0]:.2f} ± "
                     f"{c['seconds'][1]:.2f} | {c['steps']} | {c['samples_seen']} | "
                     f"{c['calibration_samples']} | {c['trainable_parameters']} | "
                     f"{c['optimizer_bytes']} |")
    lines += [
        "",
        f"Settings: calibration set {s.calibration_samples} training samples; BN tuning "
        f"{s.tune_steps} Adam steps of {s.tune_batch} samples, lr {s.tune_lr:g}; retraining "
        f"{s.retrain_steps} Adam steps of {s.retrain_batch} samples over the training split, "
        f"lr {s.retrain_lr:g}, a fresh hardware sample every {s.reprogram_every} steps.",
        "",
    ]
    if figures:
        lines += ["## Figures", ""]
        for name, caption in figures:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures
def _figures(results, folder):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = []
    acc, order = summarize(results)
    ref = results.reference["software"]
    colors = {"none": "tab:red", "drift_comp": "tab:orange", "bn_recal": "tab:blue",
              "bn_recal_tune": "tab:green", "retrain": "tab:purple", "retrain_recal": "tab:brown"}

    # accuracy vs drift time
    drift = [sc for sc in results.scenarios if len(sc.times) > 1]
    if drift:
        sc = drift[0]
        fig, ax = plt.subplots(figsize=(6, 4))
        for mit in MITIGATIONS:
            pts = [(t, acc[_label(sc.name, t, True), mit]) for t in sc.times
                   if (_label(sc.name, t, True), mit) in acc]
            if pts:
                ax.errorbar([p[0] for p in pts], [100 * p[1][0] for p in pts],
                            yerr=[100 * p[1][1] for p in pts], marker="o", capsize=3,
                            label=MITIGATION_LABELS[mit], color=colors[mit])
        ax.axhline(100 * ref, color="k", ls=":", label="software")
        ax.set_xscale("log")
        ax.set_xticks(list(sc.times), [DRIFT_LABELS.get(t, f"{t:g} s") for t in sc.times])
        ax.set_xlabel("time since programming")
        ax.set_ylabel("test accuracy, %")
        ax.set_title(f"{sc.name}: accuracy vs drift time")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "drift.png"), dpi=110)
        plt.close(fig)
        out.append(("drift.png", "Accuracy vs drift time per mitigation (mean ± std over seeds)"))

    # distortion scatter
    if results.scatter:
        labels = list(results.scatter)
        ncol = min(4, len(labels))
        nrow = math.ceil(len(labels) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False)
        for ax, label in zip(axes.flat, labels):
            layer, y_ideal, y_hw, gain, offset, _cols = results.scatter[label]
            ax.scatter(y_ideal, y_hw, s=2, alpha=0.4, color="tab:red", label="hardware")
            ax.scatter(y_ideal, gain * y_hw + offset, s=2, alpha=0.4, color="tab:green",
                       label="after per-column gain+offset")
            lo, hi = float(np.min(y_ideal)), float(np.max(y_ideal))
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
            ax.set_title(f"{label}\n({layer})", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(labels):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6, markerscale=4)
        fig.supxlabel("ideal output (x W)")
        fig.supylabel("simulated output")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "distortion.png"), dpi=100)
        plt.close(fig)
        out.append(("distortion.png", "Ideal vs simulated dot products of one analog layer per "
                    "non-ideality (seed 0): raw (red) and after the best per-column gain and offset (green)"))

    # accuracy vs tile size and wire resistance
    wires = [sc for sc in results.scenarios if sc.family == "wires"]
    if wires:
        fig, ax = plt.subplots(figsize=(6, 4))
        levels = sorted({sc.hardware.parasitics.r_wire_row for sc in wires})
        styles = ["-", "--", ":", "-."]
        for j, r in enumerate(levels):
            scs = sorted((sc for sc in wires if sc.hardware.parasitics.r_wire_row == r),
                         key=lambda sc: sc.hardware.tiles.rows)
            for mit in ("none", "bn_recal_tune"):
                pts = [(sc.hardware.tiles.rows, acc[sc.name, mit]) for sc in scs if (sc.name, mit) in acc]
                ax.errorbar([p[0] for p in pts], [100 * p[1][0] for p in pts],
                            yerr=[100 * p[1][1] for p in pts], marker="o", capsize=3,
                            ls=styles[j % len(styles)], color=colors[mit],
                            label=f"{r:g} ohm, {MITIGATION_LABELS[mit]}")
        ax.axhline(100 * ref, color="k", ls=":", label="software")
        ax.set_xscale("log", base=2)
        tiles = sorted({sc.hardware.tiles.rows for sc in wires})
        ax.set_xticks(tiles, [str(t) for t in tiles])
        ax.set_xlabel("tile size (rows = columns)")
        ax.set_ylabel("test accuracy, %")
        ax.set_title("Wire resistance per cell segment and tile size")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "wires.png"), dpi=110)
        plt.close(fig)
        out.append(("wires.png", "Accuracy vs tile size and wire resistance, without mitigation "
                    "and after BN recalibration + tuning"))

    # recovered accuracy vs absorbable share
    dist = distortion_summary(results)
    n_test = max(results.reference.get("test_samples", 1), 1)
    pts = [(label, d["absorbable"][0], recovered_fraction(acc, label, ref, n_test))
           for label, d in dist.items()]
    pts = [p for p in pts if p[2] is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], color="tab:green")
        for label, x, y in pts:
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(1.0, color="k", ls=":", lw=0.8)
        ax.set_xlabel("absorbable share of the dot-product distortion")
        ax.set_ylabel("share of the accuracy loss recovered by BN recal. + tuning")
        ax.set_title("What batchnorm can absorb vs what it recovers")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "recovery.png"), dpi=110)
        plt.close(fig)
        out.append(("recovery.png", "Recovered share of the accuracy loss vs absorbable share of "
                    "the distortion (scenarios losing at least 2 test samples)"))
    return out
