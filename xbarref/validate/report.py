"""The comparison report: ``report.md`` with the diagnosis, the worst cases and PNG plots.

:func:`write_report` writes, into a folder,

- ``report.md``: summary, diagnosis in plain words (:mod:`xbarref.validate.diagnose`)
  with the table of probes, the worst cases first with a one-line reason, and every case
  with its resistances (scalar or range), conductance range, device, input kind, the
  ideal model's error and the "worse than ideal" flag;
- ``deviation.png``: predicted vs true deviation from ideal, every output;
- ``error_vs_size.png``, ``error_vs_wire_resistance.png``,
  ``error_vs_source_resistance.png``, ``error_vs_sink_resistance.png``,
  ``error_vs_g_max.png``, ``error_vs_true_deviation.png``: max relative error of every
  case, coloured by resistance regime, marker by case group, cases worse than the
  ideal model ringed in red; a resistance of 0 (an ideal short) is drawn at the left
  edge, at the tick labelled ``0``, so cases without wires (or without terminals) stay
  in the plot; cases of equal x value and about equal error, whose markers would hide
  each other, are drawn side by side (a small offset, ordered by error, said in the
  axis label); an x range of less than a decade is drawn on a linear axis;
- ``error_maps.png``: for each diagnostic probe with one-hot inputs on which the
  candidate is above the tolerance (or every probe if none), the signed error of
  column ``j`` (x) when row ``i`` (y) alone is driven, relative to the case's
  full-scale current: the per-row and per-column error map.

matplotlib is imported only here (Agg backend). Public API: :func:`write_report`,
:func:`write_plots`, :func:`format_summary`, :func:`format_diagnosis`.
"""

from __future__ import annotations

import math
import os

import numpy as np

from xbarref.io.atomic import atomic_dir, atomic_file

__all__ = ["write_report", "write_plots", "format_summary", "format_diagnosis", "fmt"]

#: Cases listed in the "worst cases" section.
WORST = 15


def fmt(x):
    """A number for the tables: ``-`` for NaN, 4 decimals or 3 significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.2e}" if abs(x) < 1e-2 or abs(x) >= 1e3 else f"{x:.4f}"


def format_summary(result):
    """The summary lines of a :class:`~xbarref.validate.compare.Comparison`."""
    s = result.summary()
    lines = [
        f"candidate: {result.candidate}",
        f"cases: {s['cases']}, above tolerance {s['tol']:g}: {s['failed']}, not run: {s['not_run']}, "
        f"partly answered: {s['partial']}, worse than ideal V @ G: {s['worse_than_ideal']}",
        f"max relative error: {fmt(s['max_rel_error'])} (worst case {s['max_rel_error_case']}); "
        f"median over cases {fmt(s['median_max_rel_error'])}",
        f"normalized RMSE: worst {fmt(s['nrmse'])} ({s['nrmse_case']})",
        f"non-ideality factor error: worst {fmt(s['nf_error'])} ({s['nf_error_case']})",
        f"predicted vs true deviation from ideal (pooled, per-case full scale): "
        f"slope {fmt(s['slope'])}, correlation {fmt(s['correlation'])}; "
        f"median over cases: slope {fmt(s['median_slope'])}, correlation {fmt(s['median_correlation'])}",
    ]
    return lines


def format_diagnosis(result):
    """The diagnosis in plain words, one statement per line."""
    return result.diagnosis.lines()


def _g_text(m):
    lo, hi = m.g_range
    if math.isnan(hi):
        return "-"
    return f"{lo:.3g}-{hi:.3g} S" if lo != hi else f"{hi:.3g} S"


def _status(m):
    return {"passed": "yes", "failed": "NO", "partial": "partial", "not run": "not run"}.get(m.status, m.status)


def write_report(result, folder, suite="", candidate="", *, overwrite=False, name="folder",
                 progress=None):
    """Write ``report.md`` and the PNG plots into ``folder`` (created; atomically, under
    the output rules of :func:`xbarref.io.atomic.atomic_dir`: an existing non-empty
    folder is replaced only with ``overwrite``; ``name`` is the argument named in error
    messages).

    ``progress(done, total)``, when given, is called after each plot (see
    :func:`write_plots`).

    Returns
    -------
    str
        Path of ``report.md``.
    """
    with atomic_dir(folder, overwrite=overwrite, name=name) as tmp:
        _write_report(result, tmp, suite, candidate, progress)
    return os.path.join(os.path.abspath(os.fspath(folder)), "report.md")


def _write_report(result, folder, suite, candidate, progress=None):
    plots = write_plots(result, folder, progress=progress)
    lines = ["# Comparison report", "", f"- suite: `{suite}`", f"- candidate: `{candidate}`", ""]
    lines += ["## Summary", ""] + [f"- {s}" for s in format_summary(result)] + [""]
    diag = result.diagnosis
    lines += ["## Diagnosis", ""] + [f"- {s}" for s in diag.lines()] + [""]
    if diag.probes:
        lines += ["Diagnostic probes (each lets one part of the circuit act alone; the fitted values are "
                  "the effective circuit parameters that best explain the candidate's currents):", "",
                  "| probe | isolates | max rel error | status | residual after fit | fitted (true), largest deviations first |",
                  "|---|---|---|---|---|---|"]
        for p in diag.probes:
            from xbarref.validate.diagnose import _deviation

            ranked = sorted(p.fitted.items(), key=lambda kv: -_deviation(*kv[1]))
            fitted = ", ".join(f"{k} {v[0]:.3g} ({v[1]:.3g})" for k, v in ranked[:6])
            if len(p.fitted) > 6:
                fitted += f", ... ({len(p.fitted) - 6} more within {_deviation(*ranked[5][1]):.0%})"
            if p.hypothesis:
                fitted = p.hypothesis
            lines.append(f"| {p.name} | {p.isolates} | {fmt(p.error)} | {p.status} | {fmt(p.residual)} | "
                         f"{fitted or '-'} |")
        lines.append("")
    lines += ["## Worst cases", ""]
    worst = [c for c in result.worst() if c.status in ("failed", "partial", "not run")][:WORST]
    if not worst:
        lines += ["Every case is within the tolerance.", ""]
    for c in worst:
        flag = " **worse than ideal**" if c.worse_than_ideal else ""
        lines.append(f"1. `{c.name}`: {fmt(c.max_rel_error)}{flag} - {c.reason}")
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    lines += ["## Cases (worst first)", "",
              "| case | M x N | r_source | r_sink | r_wire_row | r_wire_col | G | device | inputs | max rel | "
              "ideal V@G | slope | corr | ok | worse than ideal | reason |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result.worst():
        r = c.resistances
        lines.append(f"| {c.name} | {c.shape[0]}x{c.shape[1]} | {r.get('r_source', '-')} | {r.get('r_sink', '-')} | "
                     f"{r.get('r_wire_row', '-')} | {r.get('r_wire_col', '-')} | {_g_text(c)} | {c.device} | "
                     f"{c.input_kind} | {fmt(c.max_rel_error)} | {fmt(c.ideal_error)} | {fmt(c.slope)} | "
                     f"{fmt(c.correlation)} | {_status(c)} | {'WORSE' if c.worse_than_ideal else ''} | "
                     f"{c.reason} |")
    with open(os.path.join(folder, "report.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


_MARKERS = "osD^v<>phX*P8"


def write_plots(result, folder, progress=None):
    """Write the PNG plots (see the module docstring); returns their file names.

    ``progress(done, total)``, when given, is called after each plot is written
    (``total``: the plots this result gets at most; an error plot without any value to
    show is counted as done).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    total = 7 + bool(_chosen_probes(result))
    done = [0]

    def step():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def save(fig, name):
        with atomic_file(os.path.join(folder, name), overwrite=True, name="folder") as fh:
            fig.savefig(fh, format="png", dpi=110)
        plt.close(fig)
        names.append(name)
        step()

    cases = [c for c in result.cases if c.status != "not run"]
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    devs = [result.deviations[c.name] for c in cases if c.name in result.deviations]
    d_all = np.concatenate([v[0] for v in devs]) if devs else np.zeros(1)
    q_all = np.concatenate([v[1] for v in devs]) if devs else np.zeros(1)
    ax.plot(d_all, q_all, ".", ms=2, alpha=0.4, rasterized=True, label="outputs (all cases)")
    lim = float(max(np.max(np.abs(d_all), initial=0), np.max(np.abs(q_all), initial=0))) or 1.0
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="perfect prediction")
    ax.set_xlabel("true deviation (I - I_ideal) / max|I_ideal|")
    ax.set_ylabel("predicted deviation (I_cand - I_ideal) / max|I_ideal|")
    ax.set_title(f"{result.candidate}: deviation from ideal", fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    save(fig, "deviation.png")

    floor = 1e-17
    err = np.array([max(c.max_rel_error, floor) for c in cases])
    regimes = sorted({c.regime or "-" for c in cases})
    groups = sorted({c.group or "-" for c in cases})
    cmap = plt.get_cmap("tab20")
    colour = {g: cmap(k % 20) for k, g in enumerate(regimes)}
    marker = {g: _MARKERS[k % len(_MARKERS)] for k, g in enumerate(groups)}

    def error_plot(x, xlabel, name, zero_ok=True):
        """max relative error of every case against ``x``: colour = regime, marker = group."""
        x = np.asarray(x, dtype=np.float64)
        use = np.isfinite(x) & (x >= 0 if zero_ok else x > 0)
        if not np.any(use):
            step()
            return
        pos = x[use & (x > 0)]
        zero_at = (float(pos.min()) / 10.0) if pos.size else 1.0
        # a range under a decade without zeros reads better on a linear axis
        log_x = bool(np.any(use & (x == 0))) or not pos.size or float(pos.max()) >= 10 * float(pos.min())
        xs = _dodge(np.where(x > 0, x, zero_at), use, err, log_x)
        fig, ax = plt.subplots(figsize=(11, 5.5))
        keys = sorted({(c.regime or "-", c.group or "-") for k, c in enumerate(cases) if use[k]})
        for reg, grp in keys:
            idx = [k for k, c in enumerate(cases) if use[k] and (c.regime or "-") == reg and (c.group or "-") == grp]
            ax.scatter(xs[idx], err[idx], s=30, marker=marker[grp], color=colour[reg], zorder=3)
        bad = [k for k, c in enumerate(cases) if use[k] and c.worse_than_ideal]
        if bad:
            ax.scatter(xs[bad], err[bad], s=110, marker="o", facecolors="none", edgecolors="red",
                       linewidths=1.3, zorder=4)
        if log_x:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_xscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")  # 3 and 30, not 3 x 10^0
            ax.xaxis.set_major_formatter(plain)
            # minor labels (2, 3, ... 9) only on a short axis without the "0" position
            short = (pos.size and not np.any(use & (x == 0))
                     and float(pos.max()) < 40 * float(pos.min()))
            ax.xaxis.set_minor_formatter(plain if short else NullFormatter())
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))  # 8.6e-5 as 0.86 x 1e-4
        ax.set_yscale("log")
        if np.any(use & (x == 0)):
            ax.axvline(np.sqrt(zero_at * (pos.min() if pos.size else 10 * zero_at)), color="0.7", lw=0.8, ls=":")
            ticks = [t for t in ax.get_xticks() if t > np.sqrt(zero_at * (pos.min() if pos.size else zero_at))]
            ax.set_xticks([zero_at] + ticks)
            ax.set_xticklabels(["0"] + [f"{t:g}" for t in ticks])
            ax.set_xlim(zero_at / 2, max(xs[use].max() * 2, zero_at * 4))
        ax.axhline(result.tol, color="k", ls="--", lw=0.8)
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], ls="", marker="o", color=colour[g], label=g) for g in regimes
                   if any(use[k] and (c.regime or "-") == g for k, c in enumerate(cases))]
        handles += [Line2D([], [], ls="", marker=marker[g], color="0.4", label=f"group {g}") for g in groups
                    if any(use[k] and (c.group or "-") == g for k, c in enumerate(cases))]
        handles += [Line2D([], [], ls="", marker="o", mfc="none", mec="red", label="worse than ideal V @ G"),
                    Line2D([], [], ls="--", color="k", label=f"tolerance {result.tol:g}")]
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  ncol=2 if len(handles) > 16 else 1, title="colour: regime; marker: group",
                  title_fontsize=7)
        ax.set_xlabel(xlabel + (" (cases of equal value side by side)" if dodged(x, use, xs) else ""))
        ax.set_ylabel("max relative error")
        ax.set_title(f"{result.candidate}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        save(fig, name)

    error_plot([math.sqrt(c.shape[0] * c.shape[1]) for c in cases], "sqrt(M N)", "error_vs_size.png", False)
    error_plot([c.r_wire for c in cases], "largest wire segment resistance (ohm)",
               "error_vs_wire_resistance.png")
    error_plot([c.r_source for c in cases], "largest source (driver) resistance (ohm)",
               "error_vs_source_resistance.png")
    error_plot([c.r_sink for c in cases], "largest sink (sense-amplifier) resistance (ohm)",
               "error_vs_sink_resistance.png")
    error_plot([c.g_range[1] for c in cases], "largest device conductance G (S)", "error_vs_g_max.png", False)
    error_plot([c.true_deviation for c in cases], "true IR drop: max|I - I_ideal| / max|I|",
               "error_vs_true_deviation.png", False)
    _error_maps(result, folder, plt, save)
    return names


def dodged(x, use, moved):
    """True when :func:`_dodge` moved some used point (``moved``: its result)."""
    x = np.asarray(x, dtype=np.float64)
    return bool(np.any(use & (x > 0) & (moved != x)) or np.unique(moved[use & (x == 0)]).size > 1)


def _dodge(xs, use, err, log_x, step=0.01, width=0.05, y_close=0.03):
    """``xs`` with the used points that would hide each other spread side by side.

    Points hide each other when their x values are equal and their errors (log axis)
    are within ``y_close`` of the y span; each such run is spread ``step`` of the x span
    apart (in decades on a log axis), at most ``width`` of the span wide, centred on the
    true value and ordered by error. Points of equal x far apart in y stay where they are.
    """
    xs = np.asarray(xs, dtype=np.float64).copy()
    idx = np.flatnonzero(use)
    if idx.size < 2:
        return xs
    t = np.log10(xs[idx]) if log_x else xs[idx]
    y = np.log10(np.maximum(np.asarray(err, dtype=np.float64)[idx], 1e-300))
    span = float(t.max() - t.min()) or (1.0 if log_x else abs(float(t.max())) or 1.0)
    close = y_close * (float(y.max() - y.min()) or 1.0)
    for value in np.unique(t):
        same = np.flatnonzero(t == value)
        same = same[np.argsort(y[same], kind="stable")]
        runs, run = [], [same[0]]
        for a, b in zip(same[:-1], same[1:]):
            if y[b] - y[a] <= close:
                run.append(b)
            else:
                runs.append(run)
                run = [b]
        runs.append(run)
        for run in runs:
            if len(run) < 2:
                continue
            gap = min(step, width / (len(run) - 1)) * span
            moved = value + gap * (np.arange(len(run)) - (len(run) - 1) / 2)
            xs[idx[run]] = 10.0 ** moved if log_x else moved
    return xs


def _chosen_probes(result):
    """The probe cases of ``error_maps.png`` (at most 16; none: no such plot)."""
    suite = result.suite
    if suite is None:
        return []
    probes = [sc for sc in suite.cases if sc.params.get("probe") and sc.params.get("inputs") == "one-hot"
              and sc.name in result.outputs]
    if not probes:
        return []
    failing = {p.name for p in result.diagnosis.probes if p.status not in ("agrees", "not run")}
    chosen = [sc for sc in probes if sc.name in failing] or probes
    return chosen[:16]


def _error_maps(result, folder, plt, save):
    from xbarref.validate.diagnose import error_map

    chosen = _chosen_probes(result)
    if not chosen:
        return
    ncol = min(4, len(chosen))
    nrow = int(math.ceil(len(chosen) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.3 * nrow), squeeze=False)
    for ax in axes.ravel()[len(chosen):]:
        ax.axis("off")
    for ax, sc in zip(axes.ravel(), chosen):
        E = error_map(sc, result.outputs[sc.name])
        lim = float(np.nanmax(np.abs(E))) if np.any(np.isfinite(E)) else 0.0
        lim = lim or 1e-16
        im = ax.imshow(E, cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        short = sc.name.split("_", 3)
        title = f"{short[0]} {sc.params['probe']} {sc.case.shape[0]}x{sc.case.shape[1]}"
        line = sc.params.get("line")
        res = [f"{k}{sc.params[v]:g}" for k, v in (("rs", "r_source"), ("rk", "r_sink"), ("rr", "r_wire_row"),
                                                     ("rc", "r_wire_col")) if sc.params.get(v)]
        if line:
            res.append(f"{'row' if line[0] in ('r_source', 'r_wire_row') else 'col'} {line[1]}: {line[2]:g}")
        ax.set_title(title + "\n" + (", ".join(res) or "no resistance") + " ohm", fontsize=8)
        ax.set_xlabel("column read", fontsize=7)
        ax.set_ylabel("row driven", fontsize=7)
        ax.tick_params(labelsize=6)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.ax.tick_params(labelsize=6)
        cb.formatter.set_powerlimits((-2, 2))
        cb.update_ticks()
    fig.suptitle(f"{result.candidate}: error (I_cand - I) / max|I| of column j with only row i driven",
                 fontsize=9)
    fig.tight_layout()
    save(fig, "error_maps.png")
