"""``tools/deployment/onnx_inference.py`` as a module, and network inputs read with its preprocessing.

That tool must stay one copyable file without PyTorch, so the package imports it (rather than the
tool importing the package): INT8 calibration and the exporter's image check read images exactly
as deployed inference will.
"""
import importlib.util
import json
import os
from typing import List

import numpy as np

from ..errors import SetupError
from .metadata import read_metadata


def inference_tool():
    """The standalone ``onnx_inference.py`` (a script, not a package) as a module."""
    from ..resources import tools_dir
    path = os.path.join(tools_dir(), 'deployment', 'onnx_inference.py')
    spec = importlib.util.spec_from_file_location('onnx_inference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_inputs(onnx_path: str, image_dir: str, num: int, option: str) -> List[np.ndarray]:
    """(1, 3, H, W) network inputs of the first ``num`` readable images of ``image_dir`` (sorted),
    preprocessed as ``onnx_inference.py`` does with the preprocessing stored in ``onnx_path``.
    ``option`` names the command-line option in error messages."""
    tool = inference_tool()
    pre = json.loads(read_metadata(onnx_path)['preprocess'])
    if not os.path.isdir(image_dir):
        raise SetupError(f'{option} {image_dir} is not a folder: pass a folder of images like '
                         'those the model will see')
    inputs = []
    for path in tool.image_paths(image_dir):
        img = tool.read_image(path)
        if img is None:
            continue
        inputs.append(tool.pad_batch([tool.preprocess(img, pre)[0]], pre))
        if len(inputs) == num:
            break
    if not inputs:
        raise SetupError(f'{option} {image_dir} holds no readable images: pass a folder of images')
    return inputs
