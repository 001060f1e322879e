"""Hardware configuration: small frozen dataclasses, one per physical concern, and TOML files.

A :class:`HardwareConfig` is composed of

========================  ================  ===========================================
section                   class             holds
========================  ================  ===========================================
``[tiles]``               TileConfig        tile size (rows = inputs, cols = outputs)
``[conductance]``         ConductanceConfig conductance window, S
``[mapping]``             MappingConfig     weight-to-conductance scheme, scaling, bits
``[dac]``                 DACConfig         input converter
``[adc]``                 ADCConfig         output converter
``[parasitics]``          ParasiticsConfig  driver, sink and wire resistances, ohm
``[device]``              DeviceConfig      statistical device model and I-V law
``[noise]``               NoiseConfig       noise scales and device-to-device variation
``[drift]``               DriftConfig       time of inference and drift compensation
``[faults]``              FaultConfig       stuck-at fault rates
========================  ================  ===========================================

Every field is checked in ``__post_init__``; a bad value raises
:class:`~xbarref.errors.XbarrefError` naming the key (``"adc.bits"``). The rules of a
concern that a device class also checks are written once, next to that class, and
called from here: the DAC (:func:`xbarref.devices.converters.check_dac`), the ADC
(:func:`~xbarref.devices.converters.check_adc_bits`) and the stuck-at faults
(:func:`xbarref.devices.faults.check_fault_rates`); bit slicing is checked here
(:func:`check_bit_slicing`) and by :mod:`xbarref.mapping.conductance` through it.
:func:`load_hardware` reads a TOML file (unknown sections and keys are rejected),
:func:`save_hardware` writes a commented one, :func:`preset` returns a named preset
(:data:`PRESETS`). Bits = 0 everywhere means *off*: infinite precision.

Every TOML file of xbarref (hardware files, sweep specifications) is read by
:func:`read_toml` / :func:`parse_toml` (the standard library's ``tomllib``) and written
with ``tomli_w``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace

import tomli_w

from xbarref.devices.converters import check_adc_bits, check_dac
from xbarref.devices.faults import check_fault_rates
from xbarref.errors import SizeLimitError, XbarrefError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the package tomli
    import tomli as tomllib

FORMAT = "xbarref.hardware"
FORMAT_VERSION = 1
#: Largest hardware file read (bytes).
MAX_HARDWARE_BYTES = 1 << 20


def _f(default, doc):
    return field(default=default, metadata={"doc": doc})


def _num(key, value, lo=None, hi=None, lo_open=False, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise XbarrefError(f"{key}: must be {kind}, got {value!r}")
    if integer and not isinstance(value, int):
        if not float(value).is_integer():
            raise XbarrefError(f"{key}: must be an integer, got {value!r}")
        value = int(value)
    if not math.isfinite(value):
        raise XbarrefError(f"{key}: must be finite, got {value!r}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise XbarrefError(f"{key}: must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise XbarrefError(f"{key}: must be <= {hi}, got {value!r}")
    return value if integer else float(value)


def _choice(key, value, choices):
    if value not in choices:
        raise XbarrefError(f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class _Section:
    SECTION = ""

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _key(self, name):
        return f"{self.SECTION}.{name}"


@dataclass(frozen=True)
class TileConfig(_Section):
    """Tile size: each weight block is held by crossbars of ``rows`` x ``cols`` devices."""

    SECTION = "tiles"
    rows: int = _f(64, "devices per column = inputs per tile (integer >= 1)")
    cols: int = _f(64, "weight columns per tile = outputs per tile (integer >= 1)")

    def __post_init__(self):
        for n in ("rows", "cols"):
            self._set(n, _num(self._key(n), getattr(self, n), lo=1, integer=True))


@dataclass(frozen=True)
class ConductanceConfig(_Section):
    """Programmable conductance window of the devices."""

    SECTION = "conductance"
    g_min: float = _f(0.0, "smallest programmable conductance, S (>= 0, < g_max)")
    g_max: float = _f(25e-6, "largest programmable conductance, S (> 0); 25 uS is the PCM g_max of Joshi et al. 2020")

    def __post_init__(self):
        self._set("g_max", _num(self._key("g_max"), self.g_max, lo=0.0, lo_open=True))
        self._set("g_min", _num(self._key("g_min"), self.g_min, lo=0.0))
        if self.g_min >= self.g_max:
            raise XbarrefError(f"conductance.g_min: must be < g_max = {self.g_max}, got {self.g_min}")


MAPPING_SCHEMES = ("differential", "reference")
SCALE_MODES = ("layer", "tile", "column")


def check_bit_slicing(weight_bits, slices, scheme="differential"):
    """The value checks of bit slicing, the one set (:mod:`xbarref.mapping.conductance`
    uses it too): more than one slice needs ``weight_bits > 0`` and the differential
    scheme, and ``slices * weight_bits <= 52`` (the integer weight must fit a float64)."""
    if slices > 1 and weight_bits == 0:
        raise XbarrefError("mapping.slices: bit slicing needs mapping.weight_bits > 0")
    if slices > 1 and scheme != "differential":
        raise XbarrefError("mapping.slices: bit slicing needs mapping.scheme = \"differential\"")
    if slices * weight_bits > 52:
        raise XbarrefError("mapping.slices: slices * weight_bits must be <= 52")


@dataclass(frozen=True)
class MappingConfig(_Section):
    """How weights become conductances."""

    SECTION = "mapping"
    scheme: str = _f("differential",
                     '"differential": W ~ G+ - G- on two devices; "reference": one device per '
                     "weight, minus a reference column at (g_min + g_max) / 2")
    scale: str = _f("layer", 'weight range mapped to the window: max|W| per "layer", per "tile" '
                             'or per tile "column"')
    weight_bits: int = _f(0, "conductance levels per device = 2**weight_bits (0 = infinite precision)")
    slices: int = _f(1, "devices per weight magnitude (bit slicing, shift-and-add; > 1 needs "
                        "weight_bits > 0 and the differential scheme)")

    def __post_init__(self):
        _choice(self._key("scheme"), self.scheme, MAPPING_SCHEMES)
        _choice(self._key("scale"), self.scale, SCALE_MODES)
        self._set("weight_bits", _num(self._key("weight_bits"), self.weight_bits, lo=0, hi=24, integer=True))
        self._set("slices", _num(self._key("slices"), self.slices, lo=1, hi=8, integer=True))
        check_bit_slicing(self.weight_bits, self.slices, self.scheme)


@dataclass(frozen=True)
class DACConfig(_Section):
    """Row drivers (input digital-to-analog converters)."""

    SECTION = "dac"
    bits: int = _f(8, "input resolution incl. sign for bipolar (0 = infinite precision; else >= 2, "
                      "or >= 1 for two_phase)")
    v_read: float = _f(0.2, "full-scale read voltage, V (> 0)")
    signed: str = _f("bipolar", '"bipolar" drivers, or "two_phase": positive and negative inputs '
                                "in two reads")
    bit_serial: bool = _f(False, "one read per input bit, combined by shift-and-add")
    input_range: float = _f(0.0, "input full scale in input units; 0 = each input vector's own max|x|")

    def __post_init__(self):
        bits = _num(self._key("bits"), self.bits, integer=True)
        v_read = _num(self._key("v_read"), self.v_read)
        input_range = _num(self._key("input_range"), self.input_range, lo=0.0)
        bits, v_read, _, _, _ = check_dac(bits, v_read, self.signed, self.bit_serial,
                                          input_range or None, where="dac.")
        self._set("bits", bits)
        self._set("v_read", v_read)
        self._set("input_range", input_range)


@dataclass(frozen=True)
class ADCConfig(_Section):
    """Column read-out (analog-to-digital converter per column, saturating)."""

    SECTION = "adc"
    bits: int = _f(8, "output resolution incl. sign (0 = infinite precision, no saturation; else >= 2)")
    range: str = _f("calibrated", '"fixed": full scale i_max; "calibrated": per column, the largest '
                                  "current the programmed, drifted, noise-free column can give for "
                                  'inputs within +-v_read (re-set at every time of inference); '
                                  '"programmed": per column, the percentile of |current| over '
                                  "calibration inputs read once right after programming, then fixed")
    i_max: float = _f(0.0, "full-scale current for range = \"fixed\", A (> 0 then)")
    percentile: float = _f(99.9, "percentile of the calibration currents for range = "
                                 "\"programmed\" (0 < p <= 100)")

    def __post_init__(self):
        self._set("bits", check_adc_bits(_num(self._key("bits"), self.bits, integer=True),
                                         where="adc."))
        _choice(self._key("range"), self.range, ("fixed", "calibrated", "programmed"))
        self._set("i_max", _num(self._key("i_max"), self.i_max, lo=0.0))
        self._set("percentile", _num(self._key("percentile"), self.percentile, lo=0.0, hi=100.0,
                                     lo_open=True))
        if self.range == "fixed" and self.bits > 0 and self.i_max == 0.0:
            raise XbarrefError("adc.i_max: must be > 0 A when adc.range = \"fixed\"")


#: How reads that need a circuit each are solved (``parasitics.reads``).
READS = ("exact", "first_order")


@dataclass(frozen=True)
class ParasiticsConfig(_Section):
    """Parasitic resistances of every tile (0 = ideal short, solved exactly)."""

    SECTION = "parasitics"
    r_source: float = _f(0.0, "row driver output resistance, ohm (>= 0)")
    r_sink: float = _f(0.0, "column sense-amplifier input resistance, ohm (>= 0)")
    r_wire_row: float = _f(0.0, "row wire resistance per cell segment, ohm (>= 0)")
    r_wire_col: float = _f(0.0, "column wire resistance per cell segment, ohm (>= 0)")
    reads: str = _f("exact", 'reads that need a circuit each (per-read noise, sinh devices) with parasitic '
                             'resistances: "exact" (a circuit or Newton solve per read) or "first_order" '
                             '(the first-order surrogate of xbarref.mapping.analog_matrix; measure its '
                             'error with AnalogMatrix.surrogate_check)')

    def __post_init__(self):
        for n in ("r_source", "r_sink", "r_wire_row", "r_wire_col"):
            self._set(n, _num(self._key(n), getattr(self, n), lo=0.0))
        _choice(self._key("reads"), self.reads, READS)

    @property
    def ideal(self):
        """True when every resistance is 0."""
        return self.r_source == self.r_sink == self.r_wire_row == self.r_wire_col == 0.0


DEVICE_MODEL_NAMES = ("ideal", "pcm", "rram")


@dataclass(frozen=True)
class DeviceConfig(_Section):
    """Statistical device model and device I-V law."""

    SECTION = "device"
    model: str = _f("pcm", '"ideal", "pcm" (Nandakumar 2019 / Joshi 2020, aihwkit 1.1 constants) '
                           'or "rram" (generic, see xbarref.devices.RRAMModel)')
    iv: str = _f("linear", 'device current law: "linear" (I = G v) or "sinh" (I = G sinh(k v) / k)')
    sinh_k: float = _f(0.0, "k of the sinh law, 1/V (> 0 for iv = \"sinh\", else 0)")

    def __post_init__(self):
        _choice(self._key("model"), self.model, DEVICE_MODEL_NAMES)
        _choice(self._key("iv"), self.iv, ("linear", "sinh"))
        self._set("sinh_k", _num(self._key("sinh_k"), self.sinh_k, lo=0.0))
        if self.iv == "sinh" and self.sinh_k == 0.0:
            raise XbarrefError("device.sinh_k: must be > 0 (1/V) for iv = \"sinh\"")
        if self.iv == "linear" and self.sinh_k != 0.0:
            raise XbarrefError("device.sinh_k: only meaningful for iv = \"sinh\" (set it to 0)")


@dataclass(frozen=True)
class NoiseConfig(_Section):
    """Scales of the device model's noise (1 = as published, 0 = off)."""

    SECTION = "noise"
    programming_scale: float = _f(1.0, "multiplier of the programming-noise sigma (>= 0)")
    read_scale: float = _f(1.0, "multiplier of the read-noise sigma (>= 0)")
    d2d_sigma: float = _f(0.0, "device-to-device gain variation, relative sigma (>= 0)")
    read_time_model: str = _f("split", 'how the accumulated 1/f read noise is drawn in time: "split" '
                                       "(the band slower than read_correlation_time once per inference "
                                       'session, the faster band on every read), "per_session" (all of '
                                       'it once per session) or "per_read" (all of it on every read)')
    read_correlation_time: float = _f(1e-6, "correlation time of the read-noise split, s (> 0): 1/f "
                                            "noise faster than this is new on every read")

    def __post_init__(self):
        for n in ("programming_scale", "read_scale", "d2d_sigma"):
            self._set(n, _num(self._key(n), getattr(self, n), lo=0.0))
        _choice(self._key("read_time_model"), self.read_time_model, ("split", "per_read", "per_session"))
        self._set("read_correlation_time", _num(self._key("read_correlation_time"),
                                                self.read_correlation_time, lo=0.0, lo_open=True))


@dataclass(frozen=True)
class DriftConfig(_Section):
    """Conductance drift: time of inference and compensation."""

    SECTION = "drift"
    t_inference: float = _f(0.0, "time since the first read after programming (t0 = 20 s), s (>= 0)")
    drift_scale: float = _f(1.0, "multiplier of the drift exponents (>= 0; 0 = no drift)")
    compensation: str = _f("none", '"none", "global" (one output scale per layer from a '
                                   'calibration read) or "column" (one per output)')
    reference: str = _f("programmed", 'compensation reference: "programmed" (calibration read at '
                                      't_inference = 0) or "ideal" (the same read of the ideal weights)')

    def __post_init__(self):
        self._set("t_inference", _num(self._key("t_inference"), self.t_inference, lo=0.0))
        self._set("drift_scale", _num(self._key("drift_scale"), self.drift_scale, lo=0.0))
        _choice(self._key("compensation"), self.compensation, ("none", "global", "column"))
        _choice(self._key("reference"), self.reference, ("programmed", "ideal"))


@dataclass(frozen=True)
class FaultConfig(_Section):
    """Stuck-at faults (probability per device)."""

    SECTION = "faults"
    stuck_min_rate: float = _f(0.0, "fraction of devices stuck at g_min (0..1)")
    stuck_max_rate: float = _f(0.0, "fraction of devices stuck at g_max (0..1)")

    def __post_init__(self):
        names = ("stuck_min_rate", "stuck_max_rate")
        rates = check_fault_rates(*(_num(self._key(n), getattr(self, n)) for n in names),
                                  names=tuple(self._key(n) for n in names))
        for n, rate in zip(names, rates):
            self._set(n, rate)


_SECTIONS = {
    "tiles": TileConfig, "conductance": ConductanceConfig, "mapping": MappingConfig,
    "dac": DACConfig, "adc": ADCConfig, "parasitics": ParasiticsConfig, "device": DeviceConfig,
    "noise": NoiseConfig, "drift": DriftConfig, "faults": FaultConfig,
}


@dataclass(frozen=True)
class HardwareConfig:
    """The whole simulated hardware: one section per physical concern (see module docstring)."""

    name: str = _f("custom", "free-text name of this configuration")
    tiles: TileConfig = field(default_factory=TileConfig)
    conductance: ConductanceConfig = field(default_factory=ConductanceConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    dac: DACConfig = field(default_factory=DACConfig)
    adc: ADCConfig = field(default_factory=ADCConfig)
    parasitics: ParasiticsConfig = field(default_factory=ParasiticsConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise XbarrefError(f"name: must be a string, got {self.name!r}")
        for key, cls in _SECTIONS.items():
            if not isinstance(getattr(self, key), cls):
                raise XbarrefError(f"{key}: expected a {cls.__name__}, got {type(getattr(self, key)).__name__}")

    def replace(self, **sections):
        """Return a copy with whole sections (or ``name``) replaced."""
        return replace(self, **sections)

    def device_model(self):
        """The :class:`xbarref.devices.DeviceModel` this configuration describes."""
        from xbarref.devices import DEVICE_MODELS

        cls = DEVICE_MODELS[self.device.model]
        g = self.conductance
        f = self.faults
        if self.device.model == "ideal":
            return cls(g_max=g.g_max, g_min=g.g_min, rate_stuck_min=f.stuck_min_rate,
                       rate_stuck_max=f.stuck_max_rate)
        n = self.noise
        return cls(g_max=g.g_max, g_min=g.g_min, prog_noise_scale=n.programming_scale,
                   read_noise_scale=n.read_scale, drift_scale=self.drift.drift_scale,
                   d2d_sigma=n.d2d_sigma, rate_stuck_min=f.stuck_min_rate,
                   rate_stuck_max=f.stuck_max_rate, read_time_model=n.read_time_model,
                   read_correlation_time=n.read_correlation_time)

    def to_dict(self):
        """Nested plain dict (the TOML layout)."""
        out = {"name": self.name}
        for key in _SECTIONS:
            sec = getattr(self, key)
            out[key] = {f_.name: getattr(sec, f_.name) for f_ in fields(sec)}
        return out

    @classmethod
    def from_dict(cls, data, source="hardware config"):
        """Build from a nested dict; unknown sections and keys raise naming the key."""
        if not isinstance(data, dict):
            raise XbarrefError(f"{source}: expected a table of sections")
        data = dict(data)
        fmt = data.pop("format", FORMAT)
        if fmt != FORMAT:
            raise XbarrefError(f"format: expected {FORMAT!r}, got {fmt!r}")
        ver = data.pop("format_version", FORMAT_VERSION)
        if ver != FORMAT_VERSION:
            raise XbarrefError(f"format_version: expected {FORMAT_VERSION}, got {ver!r}")
        kwargs = {}
        if "name" in data:
            kwargs["name"] = data.pop("name")
        for key, value in data.items():
            if key not in _SECTIONS:
                raise XbarrefError(f"{key}: unknown section or key (known: name, {', '.join(_SECTIONS)})")
            sec_cls = _SECTIONS[key]
            if not isinstance(value, dict):
                raise XbarrefError(f"{key}: must be a [{key}] table")
            known = {f_.name for f_ in fields(sec_cls)}
            for k in value:
                if k not in known:
                    raise XbarrefError(f"{key}.{k}: unknown key (known: {', '.join(sorted(known))})")
            kwargs[key] = sec_cls(**value)
        return cls(**kwargs)


def parse_toml(text, source="<string>"):
    """Parse TOML text into a dict; invalid TOML raises naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise XbarrefError(f"{source}: not valid TOML ({exc})") from None


def read_toml(path, *, max_bytes=None):
    """Read a UTF-8 TOML file into a dict; a missing, non-UTF-8 or invalid file raises
    naming the path, and so does a file of more than ``max_bytes`` bytes
    (:class:`~xbarref.errors.SizeLimitError`)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        raise XbarrefError(f"{path}: not a regular file (a FIFO, device or folder)")
    if not os.path.isfile(path):
        raise XbarrefError(f"{path}: no such file")
    if max_bytes is not None:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise SizeLimitError(f"{path}: {size:,} bytes; at most {max_bytes:,} are read")
    with open(path, "rb") as fh:
        raw = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise XbarrefError(f"{path}: not a UTF-8 text file") from None
    return parse_toml(text, source=path)


def _toml_line(key, value):
    """``key = value`` as TOML (written by tomli_w)."""
    return tomli_w.dumps({key: value}).rstrip("\n")


def dumps_hardware(hw):
    """The commented TOML text of a :class:`HardwareConfig`."""
    lines = [
        "# xbarref hardware configuration (read by `xbarref infer --hardware` and",
        "# xbarref.config.load_hardware). SI units; bits = 0 means infinite precision.",
        "# Written by xbarref; see docs/hardware.md for the meaning and sources of every value.",
        _toml_line("format", FORMAT),
        _toml_line("format_version", FORMAT_VERSION),
        _toml_line("name", hw.name),
    ]
    for key in _SECTIONS:
        sec = getattr(hw, key)
        lines.append("")
        lines.append(f"# {type(sec).__doc__.strip().splitlines()[0]}")
        lines.append(f"[{key}]")
        for f_ in fields(sec):
            lines.append(f"# {f_.metadata['doc']}")
            lines.append(_toml_line(f_.name, getattr(sec, f_.name)))
    return "\n".join(lines) + "\n"


def save_hardware(hw, path, *, overwrite=True, name="path"):
    """Write ``hw`` as commented TOML to ``path`` (atomically: temporary file, then rename,
    under the output rules of :mod:`xbarref.io.atomic`; ``overwrite`` replaces an
    existing regular file; ``name`` is the argument named in error messages)."""
    from xbarref.io.atomic import write_bytes

    if not isinstance(hw, HardwareConfig):
        raise XbarrefError(f"hw: expected a HardwareConfig, got {type(hw).__name__}")
    write_bytes(path, dumps_hardware(hw).encode("utf-8"), overwrite=overwrite, name=name)
    return os.fspath(path)


def loads_hardware(text, source="<string>"):
    """Parse TOML text into a :class:`HardwareConfig`."""
    return HardwareConfig.from_dict(parse_toml(text, source), source=source)


def load_hardware(path):
    """Read a hardware TOML file (a regular file of at most 1 MiB); unknown keys and
    out-of-range values raise naming the key."""
    path = os.fspath(path)
    data = read_toml(path, max_bytes=MAX_HARDWARE_BYTES)
    try:
        return HardwareConfig.from_dict(data, source=path)
    except XbarrefError as exc:
        raise XbarrefError(f"{path}: {exc}") from None


def _default():
    return HardwareConfig(
        name="default",
        tiles=TileConfig(64, 64),
        conductance=ConductanceConfig(g_min=0.0, g_max=25e-6),
        mapping=MappingConfig(scheme="differential", scale="layer", weight_bits=0, slices=1),
        dac=DACConfig(bits=8, v_read=0.2, signed="bipolar"),
        adc=ADCConfig(bits=8, range="calibrated"),
        parasitics=ParasiticsConfig(r_source=0.0, r_sink=0.0, r_wire_row=0.35, r_wire_col=0.35),
        device=DeviceConfig(model="pcm", iv="linear"),
        noise=NoiseConfig(programming_scale=1.0, read_scale=1.0, d2d_sigma=0.0),
        drift=DriftConfig(t_inference=0.0, drift_scale=1.0, compensation="global"),
        faults=FaultConfig(),
    )


def _ideal():
    return HardwareConfig(
        name="ideal",
        conductance=ConductanceConfig(g_min=0.0, g_max=25e-6),
        mapping=MappingConfig(weight_bits=0),
        dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
        parasitics=ParasiticsConfig(),
        device=DeviceConfig(model="ideal"),
        noise=NoiseConfig(0.0, 0.0, 0.0),
        drift=DriftConfig(t_inference=0.0, drift_scale=0.0, compensation="none"),
        faults=FaultConfig(),
    )


def _ir_drop():
    return _default().replace(
        name="ir_drop", device=DeviceConfig(model="ideal"), noise=NoiseConfig(0.0, 0.0, 0.0),
        drift=DriftConfig(0.0, 0.0, "none"),
    )


def _pcm_1day():
    return _default().replace(name="pcm_1day", drift=DriftConfig(86400.0, 1.0, "global"))


def _rram():
    return _default().replace(
        name="rram", conductance=ConductanceConfig(g_min=0.0, g_max=40e-6),
        device=DeviceConfig(model="rram"),
    )


#: Named presets. ``default``: PCM per Joshi et al. 2020 / aihwkit 1.1 (g_max 25 uS,
#: programming and read noise, drift with global compensation), 64 x 64 tiles,
#: differential pairs, 8-bit DAC and ADC, 0.35 ohm wire segments (the wire resistance
#: behind aihwkit 1.1's ``IOParameters.ir_drop_g_ratio`` default), ideal drivers and
#: sense amplifiers. ``ideal``: no noise, no parasitics, infinite precision (gives
#: exactly the software result). ``ir_drop``: ``default`` with ideal devices (parasitics
#: and converters only). ``pcm_1day``: ``default`` read one day after programming.
#: ``rram``: ``default`` with the generic RRAM model and a 40 uS window.
PRESETS = {"default": _default, "ideal": _ideal, "ir_drop": _ir_drop, "pcm_1day": _pcm_1day,
           "rram": _rram}


def preset(name="default"):
    """Return the named preset :class:`HardwareConfig` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise XbarrefError(f"preset: unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def as_hardware(hardware):
    """A :class:`HardwareConfig` from a config, a preset name or a TOML path."""
    if isinstance(hardware, HardwareConfig):
        return hardware
    if hardware is None:
        return preset("default")
    if isinstance(hardware, (str, os.PathLike)):
        s = os.fspath(hardware)
        if s in PRESETS:
            return preset(s)
        return load_hardware(s)
    raise XbarrefError(f"hardware: expected a HardwareConfig, a preset name or a TOML path, got {type(hardware).__name__}")
