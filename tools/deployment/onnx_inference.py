"""Detect objects with an end-to-end ONNX detector without PyTorch (``mmdet-efficientvit onnx-inference``).

The tool's code is the runtime module ``mmdet_efficientvit_runtime`` (one file, shipped in the wheel
next to the package and importable without PyTorch or mmdet); this script runs its ``main``. From a
checkout without an install, the module is taken from the repository root.
"""
import os.path as osp
import sys

try:
    from mmdet_efficientvit_runtime import main
except ModuleNotFoundError as err:
    if err.name != 'mmdet_efficientvit_runtime':  # e.g. OpenCV missing: say that, as it is
        raise
    # a checkout that is not installed: the module sits at the repository root
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    from mmdet_efficientvit_runtime import main

if __name__ == '__main__':
    main()
