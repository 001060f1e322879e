"""Weights onto simulated crossbar hardware.

AnalogMatrix          ``x @ W`` through DAC, crossbar tiles (exact circuits), ADC, digital
AnalogMatmul          the DNN engine's ``layer.matmul`` operator bound to an AnalogMatrix
map_model             copy of a model whose Conv2d / Linear layers run on the hardware
set_inference_time    open a new session of a mapped model's devices (another time since programming)
calibrate_adc         set every layer's ADC ranges from calibration inputs (adc.range = "programmed")
set_compensation      switch the drift-compensation output scale on / off
set_read_precision    float64 (default) or float32 arithmetic of the plain static reads
analog_matrices       the AnalogMatrix of every mapped layer
tile_slices           row / column blocks of a tiling
weight_scales         per layer / tile / column weight scales
differential_targets  weights to (G+, G-) pairs (with quantization and bit slicing)
reference_targets     weights to one device per weight plus a reference column
slice_coefficients    shift-and-add weights of the bit slices
quantized_weights     the weights the hardware represents (quantization only)
"""

from xbarref.mapping.analog_matrix import AnalogMatrix
from xbarref.mapping.conductance import (
    differential_targets,
    quantized_weights,
    reference_targets,
    slice_coefficients,
    tile_slices,
    weight_scales,
)
from xbarref.mapping.operator import (
    MAPPED_KINDS,
    AnalogMatmul,
    analog_matrices,
    calibrate_adc,
    map_model,
    set_compensation,
    set_inference_time,
    set_read_precision,
)

__all__ = [
    "AnalogMatrix", "AnalogMatmul", "MAPPED_KINDS", "map_model", "analog_matrices", "calibrate_adc",
    "set_compensation", "differential_targets",
    "quantized_weights", "reference_targets", "set_inference_time", "set_read_precision", "slice_coefficients", "tile_slices", "weight_scales",
]
