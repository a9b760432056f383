"""INT8 static quantization of an exported detector with onnxruntime (QDQ, per-channel weights).

Only the network is quantized (``Conv``, ``ConvTranspose``, ``MatMul``: the backbone, neck and
head); the in-graph post-processing (top-k, decoding, NMS) has none of these ops and stays float.
Activations are uint8 and weights int8 (per output channel), the combination onnxruntime runs with
VNNI instructions on x86; ranges come from MinMax calibration, on real images read with exactly
the preprocessing of deployed inference (:mod:`mmdet_efficientvit_runtime`, through
:func:`~mmdet_efficientvit.deployment.image_inputs.image_inputs`).
"""
import os
import tempfile
from typing import Iterable, Optional, Sequence

import numpy as np

from .metadata import read_metadata, write_metadata

QUANTIZED_OPS = ('Conv', 'ConvTranspose', 'MatMul')


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of inputs."""

    def __init__(self, inputs: Iterable[np.ndarray], name: str = 'input'):
        self._items = iter({name: x} for x in inputs)

    def get_next(self) -> Optional[dict]:
        return next(self._items, None)


def quantize_int8(float_path: str, out_path: str, inputs: Sequence[np.ndarray],
                  note: str = '') -> str:
    """Write the INT8 QDQ model of ``float_path`` to ``out_path`` (the float file is kept).

    ``inputs``: calibration batches for the graph's ``input``. The float model's metadata is
    copied, plus a ``quantization`` entry (``note`` says what calibrated it).
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if os.path.abspath(float_path) == os.path.abspath(out_path):
        raise ValueError('the INT8 model must not replace the float model')
    with tempfile.TemporaryDirectory() as tmp:
        # onnxruntime's recommended pre-processing (graph optimisation, shape inference): it turns
        # the exporter's shared-initializer Identity nodes back into constants; a conv whose bias
        # is not a constant cannot become a QLinearConv and would stay float (measured: R50 INT8
        # 1.26x slower than fp32 without it, 0.28x with it)
        prepared = os.path.join(tmp, 'prepared.onnx')
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out_path, _Reader(inputs), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                        calibrate_method=CalibrationMethod.MinMax)
    metadata = read_metadata(float_path)
    metadata['quantization'] = (f'onnxruntime static INT8, QDQ, per-channel int8 weights, uint8 '
                                f'activations, {"/".join(QUANTIZED_OPS)} only; MinMax calibration '
                                f'on {len(inputs)} inputs{": " + note if note else ""}')
    write_metadata(out_path, metadata)
    return out_path


def quantize_int8_on_images(float_path: str, out_path: str, image_dir: str, num: int,
                            option: str) -> int:
    """:func:`quantize_int8` calibrated on the first ``num`` readable images of ``image_dir``, read
    as deployed inference reads them (``option`` names the folder's option in errors); returns how
    many images calibrated it."""
    from .image_inputs import image_inputs
    inputs = image_inputs(float_path, image_dir, num, option)
    quantize_int8(float_path, out_path, inputs, note=f'{len(inputs)} images of {image_dir}')
    return len(inputs)
