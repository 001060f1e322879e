"""Device non-idealities and converters.

Device models (the fixed sequence targets -> programming -> drift exponents -> drift -> read)
    DeviceModel, IdealDeviceModel, PCMLikeModel, RRAMModel, ProgrammedDevices, DEVICE_MODELS
Components
    ProgrammingNoise     conductance-dependent Gaussian write noise
    DeviceVariation      fixed per-device gain (device-to-device variation)
    ReadNoise            1/f read noise, new on every read, growing with time
    PowerLawDrift        G(t) = G(t0) (t/t0)^-nu with a conductance-dependent nu
    StuckAtFaults        stuck-at-G_min / stuck-at-G_max devices
Drift compensation
    drift_compensation_reference, drift_compensation_scale
Converters
    quantize_uniform, quantize_conductance, DAC, ADC
Value checks (the one set; :class:`xbarref.config.HardwareConfig` calls them too)
    check_dac, check_adc_bits, check_fault_rates
I-V laws (owned by the circuit solver)
    Device               from xbarref.circuit.laws
"""

from xbarref.devices.converters import (ADC, DAC, check_adc_bits, check_dac, quantize_conductance,
                                        quantize_uniform)
from xbarref.devices.drift import (
    PowerLawDrift,
    drift_compensation_reference,
    drift_compensation_scale,
)
from xbarref.devices.faults import StuckAtFaults, check_fault_rates
from xbarref.devices.models import (
    DEVICE_MODELS,
    DeviceModel,
    IdealDeviceModel,
    PCMLikeModel,
    ProgrammedDevices,
    RRAMModel,
)
from xbarref.devices.noise import DeviceVariation, ProgrammingNoise, ReadNoise

__all__ = [
    "ADC", "DAC", "DEVICE_MODELS", "DeviceModel", "DeviceVariation", "IdealDeviceModel",
    "PCMLikeModel", "PowerLawDrift", "ProgrammedDevices", "ProgrammingNoise", "RRAMModel",
    "ReadNoise", "StuckAtFaults", "drift_compensation_reference", "drift_compensation_scale",
    "quantize_conductance", "quantize_uniform", "Device", "check_dac", "check_adc_bits",
    "check_fault_rates",
]


def __getattr__(name):
    # The I-V laws live in xbarref.circuit.laws (owned by the solver); resolved on first
    # use so that importing the device models does not import the circuit package.
    if name in ("Device",):
        from xbarref.circuit import laws

        return getattr(laws, name)
    raise AttributeError(f"module 'xbarref.devices' has no attribute {name!r}")
