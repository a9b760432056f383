"""Network inputs read from a folder of images with the preprocessing stored in an exported file,
exactly as deployed inference reads them (:mod:`mmdet_efficientvit_runtime`): INT8 calibration and the
exporter's image check feed what the deployed model will see."""
import json
import os
from typing import List

import mmdet_efficientvit_runtime as runtime
import numpy as np

from ..errors import SetupError
from .metadata import read_metadata


def image_inputs(onnx_path: str, image_dir: str, num: int, option: str) -> List[np.ndarray]:
    """(1, 3, H, W) network inputs of the first ``num`` readable images of ``image_dir`` (sorted),
    preprocessed as the runtime does with the preprocessing stored in ``onnx_path``.
    ``option`` names the command-line option in error messages."""
    pre = json.loads(read_metadata(onnx_path)['preprocess'])
    if not os.path.isdir(image_dir):
        raise SetupError(f'{option} {image_dir} is not a folder: pass a folder of images like '
                         'those the model will see')
    inputs = []
    for path in runtime.image_paths(image_dir):
        img = runtime.read_image(path)
        if img is None:
            continue
        inputs.append(runtime.pad_batch([runtime.preprocess(img, pre)[0]], pre))
        if len(inputs) == num:
            break
    if not inputs:
        raise SetupError(f'{option} {image_dir} holds no readable images: pass a folder of images')
    return inputs
