"""The report's figures and sections for the Fashion-MNIST preset, on small synthetic
study results: accuracy lost and recovered per scenario, the non-absorbable share, the
regime table (tile size x wires x device law) and the circuit surrogates' errors."""

import csv
import dataclasses
import re

import numpy as np
import pytest

from xbarref.tune import report
from xbarref.tune.report import (ANSWER_HEADING, comparisons, distortion_spread, distortion_summary,
                                 regime_rows, software_gaps, write_study)
from xbarref.tune.scenarios import default_scenarios, scenario_label
from xbarref.tune.study import PROTOCOLS, StudyResults, StudySettings, image_subset, pack_correct

LATER = PROTOCOLS[1]
N_TEST = 600
SUBSET = 300  # the sinh scenarios run on a subset of the test images here
CHIPS = 3
LAYERS = (("conv2", True), ("conv3", True), ("fc1", True), ("fc2", False))


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _drops(sc):
    """Share of the software-correct images each mitigation gets wrong, per scenario.

    Linear tiles x wires: none loses 0.02 x (tile / 64) x (wire / ohm) (0.2 at 256 x 2.5 ohm);
    batchnorm recovers everything (exactly the software hits). sinh k = 4: both batchnorm
    mitigations keep a loss (0.12 and 0.06); sinh k = 2.5: recalibration recovers all. Other
    families: none loses 0.3 (faults) or nothing."""
    hw = sc.hardware
    if sc.family == "tiles_wires":
        return dict(none=0.02 * hw.tiles.rows / 64 * hw.parasitics.r_wire_row, bn_recal=0.0, bn_recal_tune=0.0)
    if sc.family == "sinh":
        k4 = hw.device.sinh_k == 4.0
        return dict(none=0.3, bn_recal=0.12 if k4 else 0.0, bn_recal_tune=0.06 if k4 else 0.0)
    if sc.family == "faults":
        return dict(none=0.3, bn_recal=0.1, bn_recal_tune=0.05)
    return dict(none=0.0, bn_recal=0.0, bn_recal_tune=0.0)


def _nonabsorbable(sc, seed, layer):
    """A known non-absorbable share per scenario, chip and layer (0 for ideal hardware)."""
    base = {"tiles_wires": 1e-4, "sinh": 1e-3, "faults": 0.5}.get(sc.family, 0.0)
    return base * (1 + seed) * (1 + 0.5 * len(layer))


def _results(scenarios, n=N_TEST, chips=CHIPS, resamples=80, drops=_drops):
    g = np.random.default_rng(7)
    soft = g.random(n) < 0.9
    res = StudyResults(reference=dict(software=float(soft.mean()), ideal_hardware=float(soft.mean()),
                                      software_correct=pack_correct(soft), test_samples=n, validation_samples=0,
                                      base_seed=0),
                       scenarios=list(scenarios), settings=StudySettings(seeds=chips, bootstrap_resamples=resamples))
    for sc in scenarios:
        idx = image_subset(n, sc.test_images, 0)
        mask = np.zeros(n, dtype=bool)
        if idx is None:
            mask[:] = True
        else:
            mask[idx] = True
        for t in sc.times:
            label = scenario_label(sc, t)
            for mit, drop in drops(sc).items():
                for seed in range(chips):
                    hits = soft[mask] & (g.random(int(mask.sum())) >= drop)
                    for protocol in PROTOCOLS:
                        row = dict(scenario=sc.name, family=sc.family, label=label, t_fit=float(t),
                                   t_test=float(t), protocol=protocol, mitigation=mit, seed=seed,
                                   accuracy=float(hits.mean()), correct=pack_correct(hits))
                        if idx is not None:
                            row["subset"] = pack_correct(mask)
                        res.accuracy.append(row)
            for seed in range(chips):
                for inputs in ("ideal", "hardware"):
                    for layer, bn in LAYERS:
                        v = _nonabsorbable(sc, seed, layer) * (1 if inputs == "ideal" else 3)
                        res.distortion.append(dict(
                            scenario=label, family=sc.family, t_fit=float(t), seed=seed, layer=layer,
                            inputs=inputs, followed_by_bn=bn, nmse_total=10 * v, nonabsorbable=v,
                            absorbable=0.9, nonabsorbable_static=v, nonabsorbable_per_read=0.0))
    return res


def _fashion(families=("tiles_wires", "sinh", "faults")):
    scs = default_scenarios(preset="fashion", families=families)
    return [dataclasses.replace(sc, test_images=SUBSET) if sc.family == "sinh" else sc for sc in scs]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    res = _results(_fashion())
    out = tmp_path_factory.mktemp("fashion") / "study"
    write_study(res, out)
    return res, out


def _independent_gap(res, label, mitigation):
    """Mean over chips of the later-session accuracy rows minus the software accuracy on
    the same images, from the rows alone."""
    n = res.reference["test_samples"]
    soft = np.unpackbits(np.frombuffer(bytes.fromhex(res.reference["software_correct"]), np.uint8))[:n]
    rows = [r for r in res.accuracy if r["label"] == label and r["protocol"] == LATER
            and r["mitigation"] == mitigation]
    mask = np.ones(n, dtype=bool)
    if "subset" in rows[0]:
        mask = np.unpackbits(np.frombuffer(bytes.fromhex(rows[0]["subset"]), np.uint8))[:n].astype(bool)
    return np.mean([r["accuracy"] for r in rows]) - soft[mask].mean(), len(rows), int(mask.sum())


def test_regime_csv_holds_the_gaps_of_the_accuracy_rows(fashion):
    res, out = fashion
    rows = _csv(out / "regime.csv")
    regime = [sc for sc in res.scenarios if sc.family in ("tiles_wires", "sinh")]
    assert len(rows) == 3 * len(regime) == 36
    pattern = re.compile(r"(?:sinh k (?P<k>[\d.]+)/V, )?tile (?P<tile>\d+), wires (?P<r>[\d.]+) ohm, "
                         r"drivers (?P<d>[\d.]+) ohm")
    for r in rows:
        gap, chips, images = _independent_gap(res, r["scenario"], r["mitigation"])
        assert float(r["gap"]) == pytest.approx(gap, abs=1e-12)
        assert (int(r["chips"]), int(r["images"])) == (chips, images)
        assert images == (SUBSET if r["family"] == "sinh" else N_TEST)
        lo, hi = float(r["gap_low"]), float(r["gap_high"])
        assert lo <= float(r["gap"]) <= hi
        assert (r["outside_noise"] == "True") == (not lo <= 0 <= hi)
        # the structure columns (read from the hardware) agree with the scenario's name
        m = pattern.fullmatch(r["scenario"])
        assert m, r["scenario"]
        assert int(r["tile_rows"]) == int(r["tile_cols"]) == int(m["tile"])
        assert float(r["r_wire_row_ohm"]) == float(r["r_wire_col_ohm"]) == float(m["r"])
        assert float(r["r_source_ohm"]) == float(r["r_sink_ohm"]) == float(m["d"])
        assert r["device_iv"] == ("sinh" if m["k"] else "linear")
        assert float(r["sinh_k_per_volt"]) == (float(m["k"]) if m["k"] else 0.0)
    by = {(r["scenario"], r["mitigation"]): r for r in rows}
    # batchnorm gives back exactly the software hits on the linear grid: gap 0, within noise
    for sc in regime:
        if sc.family == "tiles_wires":
            for mit in ("bn_recal", "bn_recal_tune"):
                assert float(by[sc.name, mit]["gap"]) == 0.0 and by[sc.name, mit]["outside_noise"] == "False"
    # the largest planned loss (256 x 256, 2.5 ohm: 20 % of the correct images) is outside noise
    worst = by["tile 256, wires 2.5 ohm, drivers 100 ohm", "none"]
    assert worst["outside_noise"] == "True" and float(worst["gap_high"]) < -0.1
    # the non-absorbable share column: the mean over chips of the layer mean (BN-followed, ideal)
    sc = regime[0]
    want = np.mean([np.mean([_nonabsorbable(sc, s, lay) for lay, bn in LAYERS if bn]) for s in range(CHIPS)])
    assert float(by[sc.name, "none"]["nonabsorbable"]) == pytest.approx(want, rel=1e-12)


def test_gaps_reuse_the_comparisons_and_equal_a_fresh_computation(fashion):
    res, out = fashion
    comps = comparisons(res)
    fresh = software_gaps(res)
    reused = software_gaps(res, comps=comps)
    assert fresh == reused
    loss = {c["label"]: c for c in comps if c["b"] == "software" and c["protocol"] == LATER}
    nones = [g for g in fresh if g["mitigation"] == "none"]
    assert len(nones) == len(loss) == len({r["label"] for r in res.accuracy})
    for g in nones:
        c = loss[g["scenario"]]
        assert (g["gap"], g["gap_low"], g["gap_high"]) == (c["diff"], c["low"], c["high"])
    # the CSV of the loss-and-recovery figure holds them
    rows = _csv(out / "loss_recovery.csv")
    assert len(rows) == len(fresh)
    for r, g in zip(rows, fresh):
        assert (r["scenario"], r["mitigation"]) == (g["scenario"], g["mitigation"])
        assert float(r["gap"]) == pytest.approx(_independent_gap(res, g["scenario"], g["mitigation"])[0], abs=1e-12)


def test_regime_section_names_where_batchnorm_is_not_enough(fashion):
    res, out = fashion
    text = (out / "report.md").read_text()
    assert "## Where batchnorm stops being enough: tile size x wires x devices" in text
    line = next(s for s in text.splitlines() if s.startswith("Below software outside noise after"))
    named = re.findall(r"`([^`]+)`", line)
    # planned: only the sinh k = 4 scenarios keep a loss after both batchnorm mitigations
    assert sorted(named) == sorted(sc.name for sc in res.scenarios
                                   if sc.family == "sinh" and sc.hardware.device.sinh_k == 4.0)
    table = [s for s in text.split("## Where batchnorm stops")[1].split("\n## ")[0].splitlines()
             if s.startswith("| tile ") or s.startswith("| sinh ")]
    assert len(table) == 12
    worst = next(s for s in table if s.startswith("| tile 256, wires 2.5 ohm"))
    assert worst.split(" | ")[5].startswith("**")  # the 'none' cell: outside noise, bold


def test_answer_figures_and_their_captions(fashion):
    res, out = fashion
    text = (out / "report.md").read_text()
    assert ANSWER_HEADING in text
    # before the other figures, after every table (validation/study_doc.py stops at "## Figures")
    assert ANSWER_HEADING.startswith("## Figures") and "\n## Figures\n" in text
    assert text.index("## Cost of the mitigations") < text.index(ANSWER_HEADING) < text.index("\n## Figures\n")
    section = text.split(ANSWER_HEADING)[1].split("\n## Figures\n")[0]
    for name in ("loss_recovery.png", "nonabsorbable.png", "recovery_nonabsorbable.png", "regime.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        images = re.findall(rf"!\[([^\]]+)\]\({re.escape(name)}\)", section)
        assert len(images) == 1
        assert f"*{images[0]}*" in section and "\n" not in images[0]
    # no surrogate rows in these results: no section, no file
    assert "## Circuit surrogates" not in text and not (out / "surrogate.csv").exists()


def test_nonabsorbable_spread_is_mean_and_range_over_chips(fashion):
    res, _out = fashion
    spread = distortion_spread(res)
    summary = distortion_summary(res)
    for sc in res.scenarios:
        per_chip = [np.mean([_nonabsorbable(sc, s, lay) for lay, bn in LAYERS if bn]) for s in range(CHIPS)]
        m, lo, hi, n = spread[sc.name]
        assert (m, lo, hi, n) == pytest.approx((np.mean(per_chip), min(per_chip), max(per_chip), CHIPS), rel=1e-12)
        assert summary[sc.name]["nonabsorbable"][0] == pytest.approx(m, rel=1e-12)


def test_digits_results_get_no_regime_or_surrogate_output(tmp_path):
    res = _results(default_scenarios(quick=True), n=200, chips=2)
    out = tmp_path / "digits"
    write_study(res, out)
    files = {p.name for p in out.iterdir()}
    assert {"report.md", "accuracy.csv", "summary.csv", "comparisons.csv", "distortion.csv"} <= files
    assert not {"regime.csv", "regime.png", "surrogate.csv"} & files
    text = (out / "report.md").read_text()
    assert "## Where batchnorm stops being enough" not in text and "## Circuit surrogates" not in text
    assert regime_rows(res) == []


def _surrogate_rows():
    g = np.random.default_rng(3)
    rows = []
    for label, kind in (("sinh k 4/V, tile 128, wires 1 ohm, drivers 100 ohm", "sinh"),
                        ("read noise x1, wires 1 ohm, drivers 100 ohm", "read noise")):
        for seed in range(2):
            for layer in ("conv1", "conv2", "conv3"):
                rows.append(dict(scenario=label, seed=seed, layer=layer, kind=kind, reads=int(g.integers(10, 99)),
                                 nmse=float(g.random() * 1e-4), share_of_distortion=float(g.random() * 0.1),
                                 max_rel=float(g.random() * 1e-2), seconds_exact=float(1 + g.random()),
                                 seconds_surrogate=float(0.1 * g.random() + 0.01)))
    rows[1]["share_of_distortion"] = float("nan")  # no distortion to compare with: left out
    return rows


def test_surrogate_section_and_csv(tmp_path):
    res = _results(_fashion(("sinh",)))
    res.surrogate = _surrogate_rows()
    out = tmp_path / "surrogate"
    write_study(res, out)
    rows = _csv(out / "surrogate.csv")
    assert len(rows) == len(res.surrogate)
    for r, want in zip(rows, res.surrogate):
        assert r["scenario"] == want["scenario"] and int(r["reads"]) == want["reads"]
        assert float(r["nmse"]) == want["nmse"] and float(r["seconds_exact"]) == want["seconds_exact"]
    text = (out / "report.md").read_text()
    assert "## Circuit surrogates against the exact solves" in text
    table = {s.split(" | ")[0][2:]: s for s in text.split("## Circuit surrogates")[1].splitlines()
             if s.startswith("| sinh k") or s.startswith("| read noise")}
    assert len(table) == 2
    for label, line in table.items():
        rs = [r for r in res.surrogate if r["scenario"] == label]
        share = np.array([r["share_of_distortion"] for r in rs])
        share = share[np.isfinite(share)]
        exact, sur = sum(r["seconds_exact"] for r in rs), sum(r["seconds_surrogate"] for r in rs)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == rs[0]["kind"]
        assert cells[2:5] == ["2", "3", str(sum(r["reads"] for r in rs))]
        assert cells[5] == f"{np.mean([r['nmse'] for r in rs]):.2e} / {max(r['nmse'] for r in rs):.2e}"
        assert cells[6] == f"{share.mean():.2e} / {share.max():.2e}"
        assert cells[7] == f"{max(r['max_rel'] for r in rs):.2e}"
        assert cells[8:] == [f"{exact:.1f}", f"{sur:.1f}", f"{exact / sur:.1f}x"]


def test_report_without_surrogate_attribute(tmp_path):
    """Results from before the surrogate rows existed (no attribute at all) still report."""
    res = _results(_fashion(("sinh",)), n=200, chips=2)
    assert not hasattr(res, "surrogate") or not res.surrogate
    if hasattr(res, "surrogate"):
        del res.__dict__["surrogate"]
    text = report.report_markdown(res)
    assert "## Circuit surrogates" not in text and "## Where batchnorm stops" in text


def test_one_regime_scenario_without_distortion_rows(tmp_path):
    """A single quick sinh scenario and no distortion rows: the regime figure and table,
    no non-absorbable figures (they need the distortion rows)."""
    res = _results(default_scenarios(preset="fashion", families=("sinh",), quick=True), n=200, chips=1)
    res.distortion = []
    out = tmp_path / "one"
    write_study(res, out)
    files = {p.name for p in out.iterdir()}
    assert {"regime.png", "regime.csv", "loss_recovery.png"} <= files
    assert not {"nonabsorbable.png", "recovery_nonabsorbable.png"} & files
    rows = _csv(out / "regime.csv")
    assert [r["mitigation"] for r in rows] == ["none", "bn_recal", "bn_recal_tune"]
    assert all(r["nonabsorbable"] == "nan" for r in rows)
    for r in rows:
        assert float(r["gap"]) == pytest.approx(_independent_gap(res, r["scenario"], r["mitigation"])[0], abs=1e-12)


def test_regime_finding_counts_the_regime_rows(fashion):
    res, out = fashion
    text = (out / "report.md").read_text()
    shows = text.split("## What this run shows")[1].split("\n## ")[0]
    line = next(s for s in shows.splitlines() if s.startswith("- **Where batchnorm stops being enough**"))
    rows = _csv(out / "regime.csv")
    for device, k in (("linear", None), ("sinh, k = 2.5 /V", "2.5"), ("sinh, k = 4 /V", "4.0")):
        mine = [r for r in rows if (r["device_iv"] == "linear") == (k is None)
                and (k is None or r["sinh_k_per_volt"] == k)]
        counts = []
        for mit, name in (("none", "none"), ("bn_recal", "BN recal."), ("bn_recal_tune", "BN recal. + tuning")):
            have = [r for r in mine if r["mitigation"] == mit]
            below = sum(r["outside_noise"] == "True" and float(r["gap"]) < 0 for r in have)
            counts.append(f"{name} {below} of {len(have)}")
        assert f"{device}, drivers 100 / sinks 100 ohm: " + ", ".join(counts) in line
    # planned: the largest gap batchnorm leaves is a sinh k = 4 scenario after BN recal. + tuning
    m = re.search(r"Largest gap left after the better batchnorm mitigation: `([^`]+)` \(BN recal\. \+ tuning\) "
                  r"([-+\d.]+) pp", line)
    assert m and m[1].startswith("sinh k 4/V")
    row = next(r for r in rows if r["scenario"] == m[1] and r["mitigation"] == "bn_recal_tune")
    assert float(m[2]) == pytest.approx(100 * float(row["gap"]), abs=0.051)
    assert float(row["gap"]) == min(float(r["gap"]) for r in rows if r["mitigation"] == "bn_recal_tune")


def test_whiskers_are_never_negative_when_the_estimate_lies_outside_its_interval():
    # a percentile bootstrap interval need not contain its estimate (e.g. almost all
    # paired differences 0): the whisker on that side is 0, never negative
    from xbarref.tune.report import _whiskers

    below, above = _whiskers([1.0, 0.5], [1.2, 0.1], [2.0, 0.4])
    np.testing.assert_array_equal(below, [0.0, 0.4])
    np.testing.assert_array_equal(above, [1.0, 0.0])


def test_assumptions_name_the_scenarios_read_through_the_surrogate():
    from types import SimpleNamespace

    from xbarref.config import ParasiticsConfig, preset
    from xbarref.tune.report import assumptions
    from xbarref.tune.scenarios import Scenario
    from xbarref.tune.study import StudySettings

    wired = ParasiticsConfig(r_source=100.0, r_sink=100.0, r_wire_row=1.0, r_wire_col=1.0)
    exact = Scenario("exact one", "tiles_wires", preset("ideal").replace(parasitics=wired))
    approx = Scenario("approximate one", "sinh", preset("ideal").replace(
        parasitics=ParasiticsConfig(**{**wired.__dict__, "reads": "first_order"})))
    res = SimpleNamespace(settings=StudySettings(seeds=2), scenarios=[exact, approx], reference={},
                          retraining={}, selection={})
    text = "\n".join(assumptions(res))
    assert "Circuit surrogate" in text and "`approximate one`" in text and "`exact one`" not in text
    res.scenarios = [exact]
    assert "Circuit surrogate" not in "\n".join(assumptions(res))
