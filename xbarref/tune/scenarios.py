"""The study's scenario catalogue: scenario families, grouped into named presets.

A *scenario* is one hardware setting (:class:`Scenario`); a *family* is a function that
derives the scenarios of one non-ideality from a base hardware configuration; a
*preset* is an ordered list of families (plus an optional change of the base). The
study runner (:mod:`xbarref.tune.study`) only sees the list of scenarios.

Adding a preset (e.g. Fashion-MNIST with large tiles, wires + drivers, sinh devices)::

    from xbarref.tune.scenarios import FamilyContext, Scenario, register_family, register_preset

    @register_family("wires_drivers")
    def _wires_drivers(ctx):                       # ctx: FamilyContext
        hw = ctx.common.replace(parasitics=ParasiticsConfig(r_source=100.0, r_sink=100.0,
                                                            r_wire_row=1.0, r_wire_col=1.0))
        return [Scenario("wires 1 ohm + drivers 100 ohm", "wires_drivers", hw)]

    register_preset("fashion", ("quantization", "wires_drivers", "read_noise", "drift"),
                    base=lambda hw: hw.replace(tiles=TileConfig(256, 256)))

and ``default_scenarios(base, preset="fashion")`` (``xbarref study --preset fashion``)
builds it. Names must be unique within a preset: a scenario's random draws are keyed
by its name (:mod:`xbarref.tune.study`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from xbarref.config import (ADCConfig, DACConfig, DeviceConfig, DriftConfig, FaultConfig,
                            HardwareConfig, MappingConfig, NoiseConfig, ParasiticsConfig,
                            TileConfig, as_hardware, preset as hw_preset)
from xbarref.errors import XbarrefError
from xbarref.tune.batchnorm import BN_KINDS

__all__ = ["Scenario", "FamilyContext", "register_family", "register_preset", "default_scenarios",
           "FAMILY_BUILDERS", "PRESETS", "DRIFT_TIMES", "DRIFT_LABELS", "scenario_label",
           "bn_followed_layers", "families_of", "scenario_from_dict", "STUDY_ADC", "FASHION_WIRES",
           "FASHION_TILES", "FASHION_DRIVER_OHM", "FASHION_SINH_K", "FASHION_CIRCUIT_IMAGES", "FASHION_FLOAT32",
           "FASHION_FAMILIES", "FASHION_EVAL_BATCH", "READ_PRECISIONS"]

#: Arithmetic of a scenario's reads on cached matrices (``Scenario.read_precision``).
READ_PRECISIONS = ("float64", "float32")
#: Largest ``Scenario.eval_batch``.
MAX_EVAL_BATCH = 1 << 16

#: Drift times of the study, s: 1 h, 1 day, 1 month (30 days), 1 year (365 days).
DRIFT_TIMES = (3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
DRIFT_LABELS = {0.0: "20 s", 1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 30 * 86400.0: "1 month",
                365 * 86400.0: "1 year"}

#: ADC range of the study when the base configuration says ``"calibrated"`` (the
#: oracle): per column the 99.9th percentile of the calibration currents read once
#: right after programming, then fixed.
STUDY_ADC = dict(range="programmed", percentile=99.9)


@dataclass(frozen=True)
class Scenario:
    """One hardware setting of the study.

    Attributes
    ----------
    name : str
        Unique within a preset, e.g. ``"wires 3.5 ohm, tile 64"``; keys its random draws.
    family : str
    hardware : HardwareConfig
    times : tuple of float
        Times of the fit sessions, s since programming (several for the drift family:
        the same programmed devices are used at each).
    retrain : bool
        Also run the noise-aware retraining baseline.
    distortion : bool
        Also measure the dot-product distortion.
    test_images : int or None
        Evaluate on a seeded subset of this many test images (drawn without replacement,
        keyed by the base seed and the subset size, the same subset for every scenario of
        that size); None: all test images. For scenarios whose every read is its own
        circuit or Newton solve.
    read_precision : {"float64", "float32"}
        Arithmetic of the chips' plain static reads
        (:func:`xbarref.mapping.set_read_precision`); with ``"float32"`` every chip task
        measures the difference to float64 reads (:func:`xbarref.tune.precision_errors`).
    eval_batch : int
        Images per forward call of the chips' test and validation evaluations. Chips
        without per-read draws give the same outputs for any value (run in cache-sized
        pieces either way); with per-read noise it decides which of the session's draws
        each image gets (all equally valid; the draws are made piece by piece in image
        order) and how large the arrays are (32 is about 2.5x faster than 512 for the
        Fashion-MNIST CNN).
    """

    name: str
    family: str
    hardware: HardwareConfig
    times: tuple = (0.0,)
    retrain: bool = False
    distortion: bool = True
    test_images: int | None = None
    read_precision: str = "float64"
    eval_batch: int = 512

    def __post_init__(self):
        if self.read_precision not in READ_PRECISIONS:
            raise XbarrefError(f"scenario {self.name!r}: read_precision must be one of {READ_PRECISIONS}, "
                               f"got {self.read_precision!r}")
        b = self.eval_batch
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= MAX_EVAL_BATCH:
            raise XbarrefError(f"scenario {self.name!r}: eval_batch must be an integer in [1, {MAX_EVAL_BATCH}], "
                               f"got {b!r}")

    @property
    def has_drift(self):
        return self.hardware.device.model != "ideal" and self.hardware.drift.drift_scale > 0

    @property
    def read_noisy(self):
        """True when every read draws new noise (the per-read part is not zero)."""
        return self.hardware.device.model != "ideal" and self.hardware.device_model().has_read_noise

    @property
    def session_dependent(self):
        """True when two sessions of a chip differ (drift or read noise)."""
        hw = self.hardware
        return hw.device.model != "ideal" and (hw.drift.drift_scale > 0 or hw.noise.read_scale > 0)

    @property
    def adc_ranged(self):
        """True when the ADC range is set at programming (``adc_recal`` applies)."""
        return self.hardware.adc.bits > 0 and self.hardware.adc.range == "programmed"

    def to_dict(self):
        return dict(name=self.name, family=self.family, hardware=self.hardware.to_dict(),
                    times=[float(t) for t in self.times], retrain=self.retrain,
                    distortion=self.distortion, test_images=self.test_images,
                    read_precision=self.read_precision, eval_batch=self.eval_batch)


def scenario_from_dict(d):
    """Inverse of :meth:`Scenario.to_dict`."""
    n = d.get("test_images")
    # results written before these fields: float64 reads, batches of 512
    return Scenario(d["name"], d["family"], HardwareConfig.from_dict(d["hardware"]),
                    tuple(float(t) for t in d["times"]), bool(d["retrain"]), bool(d["distortion"]),
                    None if n is None else int(n), d.get("read_precision", "float64"),
                    d.get("eval_batch", 512))


@dataclass(frozen=True)
class FamilyContext:
    """What a family builder receives.

    Attributes
    ----------
    base : HardwareConfig
        The base configuration (after the preset's change).
    common : HardwareConfig
        ``ideal`` hardware with the base's conductance window, mapping scheme and scale,
        DAC voltage and signed mode, ADC range mode, tiles and device I-V law: the
        starting point where each family switches on only its own non-ideality.
    quick : bool
        One level per family (tests and smoke runs).
    """

    base: HardwareConfig
    common: HardwareConfig
    quick: bool

    @property
    def device_model(self):
        return self.base.device.model if self.base.device.model != "ideal" else "pcm"

    @property
    def compensation(self):
        return self.base.drift.compensation if self.base.drift.compensation != "none" else "global"

    @property
    def r_wire(self):
        return self.base.parasitics.r_wire_row or 0.35

    def quant(self, bits_dac=None, bits_adc=None, weight_bits=None, adc_range=None):
        b, c = self.base, self.common
        return c.replace(
            mapping=MappingConfig(scheme=b.mapping.scheme, scale=b.mapping.scale,
                                  weight_bits=weight_bits or b.mapping.weight_bits or 4),
            dac=DACConfig(bits=bits_dac or b.dac.bits or 8, v_read=b.dac.v_read, signed=b.dac.signed),
            adc=ADCConfig(bits=bits_adc or b.adc.bits or 8, range=adc_range or c.adc.range,
                          i_max=b.adc.i_max, percentile=c.adc.percentile))

    def device(self, noise, drift_scale=0.0, compensation="none"):
        return self.common.replace(device=DeviceConfig(model=self.device_model), noise=noise,
                                   drift=DriftConfig(0.0, drift_scale, compensation))

    def noise(self, programming=0.0, read=0.0, mode=None):
        n = self.base.noise
        return NoiseConfig(programming, read, 0.0, read_time_model=mode or n.read_time_model,
                           read_correlation_time=n.read_correlation_time)


#: ``{family name: builder(FamilyContext) -> list of Scenario}``.
FAMILY_BUILDERS = {}
#: ``{preset name: (families, base change or None)}``.
PRESETS = {}


def register_family(name):
    """Decorator registering a family builder under ``name``."""
    def deco(fn):
        FAMILY_BUILDERS[name] = fn
        return fn
    return deco


def register_preset(name, families, base=None, float32_reads=(), eval_batch=None):
    """Register a preset: an ordered tuple of family names, an optional
    ``base(HardwareConfig) -> HardwareConfig`` applied to the base configuration, the
    families whose scenarios read in float32 (``Scenario.read_precision``) and the
    evaluation batch of its scenarios (``Scenario.eval_batch``; None: the default)."""
    PRESETS[name] = (tuple(families), base, frozenset(float32_reads), eval_batch)


def families_of(preset="digits", extra=True):
    """Family names of a preset (``extra``: also the registered families outside it)."""
    if preset not in PRESETS:
        raise XbarrefError(f"preset: unknown study preset {preset!r}; expected one of {', '.join(PRESETS)}")
    fams = PRESETS[preset][0]
    return fams + tuple(f for f in FAMILY_BUILDERS if f not in fams) if extra else fams


# ----------------------------------------------------------------------------- families
@register_family("quantization")
def _quantization(ctx):
    wb = ctx.base.mapping.weight_bits or 4
    d, a = ctx.base.dac.bits or 8, ctx.base.adc.bits or 8
    out = [Scenario(f"weights {wb} b, DAC/ADC {d}/{a} b", "quantization", ctx.quant())]
    if not ctx.quick:
        out.append(Scenario(f"weights {wb} b, DAC/ADC 6/6 b", "quantization", ctx.quant(6, 6)))
        if ctx.common.adc.range == "programmed":
            out.append(Scenario(f"weights {wb} b, DAC/ADC {d}/{a} b, ADC range from conductances",
                                "quantization", ctx.quant(adc_range="calibrated")))
    return out


@register_family("wires")
def _wires(ctx):
    r = ctx.r_wire
    rp = ctx.base.parasitics
    out = []
    for rw in ((r,) if ctx.quick else (r, 10 * r)):
        for tile in ((64,) if ctx.quick else (32, 128)):
            out.append(Scenario(f"wires {rw:g} ohm, tile {tile}", "wires", ctx.common.replace(
                tiles=TileConfig(tile, tile),
                parasitics=ParasiticsConfig(r_source=rp.r_source, r_sink=rp.r_sink, r_wire_row=rw,
                                            r_wire_col=rw))))
    return out


@register_family("programming")
def _programming(ctx):
    return [Scenario("programming noise", "programming",
                     ctx.device(ctx.noise(ctx.base.noise.programming_scale or 1.0)))]


@register_family("read_noise")
def _read_noise(ctx):
    out = []
    for s in ((3.0,) if ctx.quick else (1.0, 3.0, 10.0)):
        out.append(Scenario(f"read noise x{s:g}", "read_noise", ctx.device(ctx.noise(read=s))))
    if not ctx.quick:
        out.append(Scenario("read noise x10, all per read", "read_noise",
                            ctx.device(ctx.noise(read=10.0, mode="per_read"))))
        out.append(Scenario("read noise x10, all per session", "read_noise",
                            ctx.device(ctx.noise(read=10.0, mode="per_session"))))
    return out


@register_family("drift")
def _drift(ctx):
    times = (DRIFT_TIMES[1], DRIFT_TIMES[3]) if ctx.quick else DRIFT_TIMES
    return [Scenario("drift", "drift", ctx.device(ctx.noise(), ctx.base.drift.drift_scale or 1.0,
                                                  ctx.compensation), times=times)]


@register_family("faults")
def _faults(ctx):
    return [Scenario(f"faults {100 * rate:g} %", "faults", ctx.common.replace(
        device=DeviceConfig(model="ideal"), faults=FaultConfig(rate / 2, rate / 2)))
        for rate in ((0.05,) if ctx.quick else (0.01, 0.05))]


def _combined_static(ctx):
    rp = ctx.base.parasitics
    r = ctx.r_wire
    return ctx.quant().replace(
        parasitics=ParasiticsConfig(r_source=rp.r_source, r_sink=rp.r_sink, r_wire_row=r, r_wire_col=r),
        device=DeviceConfig(model=ctx.device_model),
        noise=ctx.noise(ctx.base.noise.programming_scale or 1.0),
        drift=DriftConfig(0.0, ctx.base.drift.drift_scale or 1.0, ctx.compensation),
        faults=FaultConfig(0.005, 0.005))


@register_family("combined")
def _combined(ctx):
    return [Scenario(f"combined: wires {ctx.r_wire:g} ohm, no read noise", "combined", _combined_static(ctx),
                     times=(DRIFT_TIMES[1],), retrain=True)]


@register_family("combined_read_noise")
def _combined_read_noise(ctx):
    hw = _combined_static(ctx)
    return [Scenario("combined: read noise, ideal wires", "combined_read_noise", hw.replace(
        parasitics=ParasiticsConfig(), noise=ctx.noise(ctx.base.noise.programming_scale or 1.0,
                                                       ctx.base.noise.read_scale or 1.0)),
        times=(DRIFT_TIMES[1],))]


register_preset("digits", ("quantization", "wires", "programming", "read_noise", "drift", "faults",
                           "combined"))



# ----------------------------------------------------------------------------- Fashion-MNIST
#: Wire resistance per cell segment of the Fashion-MNIST preset, ohm: 0.35 (the value
#: behind aihwkit 1.1's ``IOParameters.ir_drop_g_ratio`` default) to 2.5 (a minimum-pitch
#: lower copper level, see docs/study.md), and 1.0 between them.
FASHION_WIRES = (0.35, 1.0, 2.5)
#: Tile sizes (rows = columns) of the Fashion-MNIST preset.
FASHION_TILES = (64, 128, 256)
#: Driver (row) and sense (column) resistance of the Fashion-MNIST preset, ohm.
FASHION_DRIVER_OHM = 100.0
#: k of the sinh I-V law ``I = G sinh(k V) / k``, 1/V: 1 / V0 of two published RRAM
#: compact models, the Stanford RRAM model 1.0.0 (V0 = 0.25 V) and the PKU/Stanford
#: model 2.0 beta (V_T = 0.4 V); see docs/study.md.
FASHION_SINH_K = (2.5, 4.0)
#: Test images of the scenarios that solve a circuit or a Newton system per read.
FASHION_CIRCUIT_IMAGES = 2000
#: How the fashion preset solves those reads: the first-order surrogate, its error against the
#: exact per-read solves measured in every chip task (``StudySettings.surrogate_reads``).
FASHION_READS = "first_order"


def _fashion_parasitics(r_wire, reads="exact"):
    return ParasiticsConfig(r_source=FASHION_DRIVER_OHM, r_sink=FASHION_DRIVER_OHM,
                            r_wire_row=r_wire, r_wire_col=r_wire, reads=reads)


@register_family("fashion_quantization")
def _fashion_quantization(ctx):
    out = []
    for wb in ((4,) if ctx.quick else (4, 6, 8)):
        out.append(Scenario(f"weights {wb} b, DAC/ADC 8/8 b", "fashion_quantization",
                            ctx.quant(8, 8, wb)))
    if not ctx.quick:
        out.append(Scenario("weights 4 b, DAC/ADC 6/6 b", "fashion_quantization", ctx.quant(6, 6, 4)))
    return out


@register_family("tiles_wires")
def _tiles_wires(ctx):
    """Tile size x wire resistance, with 100 ohm drivers and sense inputs; linear devices."""
    out = []
    for tile in ((128,) if ctx.quick else FASHION_TILES):
        for rw in ((2.5,) if ctx.quick else FASHION_WIRES):
            out.append(Scenario(f"tile {tile}, wires {rw:g} ohm, drivers {FASHION_DRIVER_OHM:g} ohm",
                                "tiles_wires", ctx.common.replace(
                                    tiles=TileConfig(tile, tile), parasitics=_fashion_parasitics(rw))))
    return out


@register_family("sinh")
def _sinh(ctx):
    """Non-linear (sinh) devices with wires and drivers: Newton in every read."""
    out = []
    grid = ([(128, 1.0, 4.0)] if ctx.quick else
            [(128, 1.0, k) for k in FASHION_SINH_K] + [(256, 2.5, FASHION_SINH_K[-1])])
    for tile, rw, k in grid:
        out.append(Scenario(
            f"sinh k {k:g}/V, tile {tile}, wires {rw:g} ohm, drivers {FASHION_DRIVER_OHM:g} ohm", "sinh",
            ctx.common.replace(tiles=TileConfig(tile, tile), parasitics=_fashion_parasitics(rw, FASHION_READS),
                               device=DeviceConfig(model="ideal", iv="sinh", sinh_k=k)),
            test_images=FASHION_CIRCUIT_IMAGES))
    return out


@register_family("read_noise_wires")
def _read_noise_wires(ctx):
    """PCM read noise with wires and drivers: a circuit per read."""
    out = []
    for scale in ((1.0,) if ctx.quick else (1.0, 3.0)):
        hw = ctx.device(ctx.noise(read=scale)).replace(parasitics=_fashion_parasitics(1.0, FASHION_READS))
        out.append(Scenario(f"read noise x{scale:g}, wires 1 ohm, drivers {FASHION_DRIVER_OHM:g} ohm",
                            "read_noise_wires", hw, test_images=FASHION_CIRCUIT_IMAGES))
    return out


@register_family("fashion_combined")
def _fashion_combined(ctx):
    """4-bit weights, 8-bit converters, 1 ohm wires with 100 ohm drivers, programming noise,
    drift read at 1 day, 1 % faults (no read noise: a static chip)."""
    hw = _combined_static(ctx).replace(parasitics=_fashion_parasitics(1.0))
    return [Scenario(f"combined: wires 1 ohm, drivers {FASHION_DRIVER_OHM:g} ohm, no read noise",
                     "fashion_combined", hw, times=(DRIFT_TIMES[1],))]


#: Families of the Fashion-MNIST preset, in report order.
FASHION_FAMILIES = ("fashion_quantization", "tiles_wires", "programming", "drift", "faults",
                    "fashion_combined", "read_noise_wires", "sinh")
#: Its families whose chips read in float32 (all: every read of the preset is a product
#: with matrices cached per session); what float32 changes against float64 reads is
#: measured in every chip task (``xbarref.tune.precision_errors``).
FASHION_FLOAT32 = FASHION_FAMILIES

#: Evaluation batch of the Fashion-MNIST preset (``Scenario.eval_batch``).
FASHION_EVAL_BATCH = 32

register_preset("fashion", FASHION_FAMILIES, base=lambda hw: hw.replace(tiles=TileConfig(128, 128)),
                float32_reads=FASHION_FLOAT32, eval_batch=FASHION_EVAL_BATCH)

def _common(base):
    ideal = hw_preset("ideal")
    adc = base.adc
    rng_mode, pct = (STUDY_ADC["range"], STUDY_ADC["percentile"]) if adc.range == "calibrated" \
        else (adc.range, adc.percentile)
    return ideal.replace(
        conductance=base.conductance,
        mapping=MappingConfig(scheme=base.mapping.scheme, scale=base.mapping.scale, weight_bits=0),
        dac=DACConfig(bits=0, v_read=base.dac.v_read, signed=base.dac.signed),
        adc=ADCConfig(bits=0, range=rng_mode, i_max=adc.i_max, percentile=pct),
        tiles=base.tiles,
        device=DeviceConfig(model="ideal", iv=base.device.iv, sinh_k=base.device.sinh_k)
        if base.device.iv != "linear" else DeviceConfig(model="ideal"),
    )


def default_scenarios(base=None, quick=False, families=None, preset="digits"):
    """The scenarios of a study preset, derived from a base hardware configuration.

    From ``base`` (the ``default`` hardware preset when None) the scenarios keep the
    conductance window, weight mapping scheme and scaling, DAC voltage and signed-input
    mode, driver and sink resistances, the device model (``pcm`` if ``base`` has
    ``ideal`` devices), the read-noise time model, the tile size (except in the wire
    sweep) and the drift compensation mode. The ADC range: ``"calibrated"`` in the base
    (the conductance oracle, the hardware preset's default) becomes
    :data:`STUDY_ADC` (set at programming from calibration currents); ``"fixed"`` or
    ``"programmed"`` are kept. Each family switches on only its own non-ideality
    (the ``digits`` preset):

    - ``quantization``: 4-bit weights (or ``base.mapping.weight_bits``) with the base
      DAC / ADC bits (8 / 8), with 6-bit DAC / ADC, and the 8 / 8 case with the ADC
      range from the conductances (the old oracle, for comparison);
    - ``wires``: wire resistance ``r`` and ``10 r`` per cell segment (``r =
      base.parasitics.r_wire_row``, 0.35 ohm if that is 0) on tiles of 32 and 128;
    - ``programming``: programming noise of the device model (scale 1);
    - ``read_noise``: read noise scaled 1, 3, 10 with the base's time model (default:
      session draw + per-read band), and scale 10 with the named extremes "all per
      read" and "all per session";
    - ``drift``: drift alone, fit sessions at 1 h, 1 day, 1 month, 1 year;
    - ``faults``: 1 % and 5 % stuck devices, half at g_min and half at g_max;
    - ``combined``: 4-bit weights with 8 / 8-bit DAC / ADC, programming noise, drift at
      1 day, 1 % faults and wire resistance ``r`` (no read noise); it also runs the
      retraining baseline;
    - ``combined_read_noise`` (not in the preset; ``families=`` / ``--only``): the same
      with read noise and ideal wires (read noise with wire resistance needs a circuit
      solve per read, too slow for a study).

    ``quick=True`` keeps one level per family; ``families`` selects families (default:
    the preset's).
    """
    fams_all = families_of(preset)
    families = PRESETS[preset][0] if families is None else tuple(families)
    for f in families:
        if f not in FAMILY_BUILDERS:
            raise XbarrefError(f"families: unknown family {f!r}; expected some of {', '.join(fams_all)}")
    base = as_hardware(base)
    change = PRESETS[preset][1]
    if change is not None:
        base = change(base)
    ctx = FamilyContext(base, _common(base), bool(quick))
    out = []
    float32, batch = PRESETS[preset][2], PRESETS[preset][3]
    for f in families:
        for s in FAMILY_BUILDERS[f](ctx):
            out.append(dataclasses.replace(s, hardware=s.hardware.replace(name=s.name),
                                           read_precision="float32" if f in float32 else s.read_precision,
                                           eval_batch=s.eval_batch if batch is None else batch))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise XbarrefError("scenarios: names must be unique (they key the random draws)")
    return out


def scenario_label(sc, t):
    """``sc.name``, with the fit time for scenarios with several times."""
    return sc.name if len(sc.times) == 1 else f"{sc.name} {DRIFT_LABELS.get(t, f'{t:g} s')}"


def bn_followed_layers(model):
    """Names of the Conv2d / Linear nodes whose output goes only into a batchnorm layer."""
    consumers = {}
    for node in model.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node.layer.kind)
    out = set()
    for node in model.nodes:
        if node.layer.kind in ("conv2d", "linear"):
            kinds = consumers.get(node.name, [])
            if kinds and all(k in BN_KINDS for k in kinds):
                out.add(node.name)
    return out
