"""Opt-in fixes that let mmdeploy 1.3.1 export to ONNX on PyTorch >= 2.9 (tested on 2.14).

``import mmdet_efficientvit.compat.mmdeploy`` before ``mmdeploy.apis.torch2onnx``; the deploy configs
in ``configs/deploy/`` import it through ``custom_imports``, which also reaches the process that
mmdeploy's ``tools/deploy.py`` spawns for the export. Importing it registers two rewrites in mmdeploy's
own rewriter registries; mmdeploy applies them only inside its export (``RewriterContext``) and undoes
them after. Nothing changes unless this module is imported:

- ``torch.onnx.export`` gets ``dynamo=False``. Since torch 2.9 the default is the dynamo exporter,
  which needs onnxscript and does not run the TorchScript symbolics that mmdeploy's rewrites are
  written for, so mmdeploy fails for every model (``No module named 'onnxscript'``). A caller's
  explicit ``dynamo`` is kept.
- RoIAlign's symbolic, for the backends that get ONNX ``RoiAlign`` (all but TensorRT and PPLNN, which
  get mmcv's ``MMCVRoiAlign`` from mmdeploy's own symbolic and are left to it). mmdeploy's imports
  ``_cast_Long`` from ``torch.onnx.symbolic_opset9``, which torch no longer has; this one builds
  mmdeploy's graph with that int64 ``Cast`` written out.

With onedl-mmdeploy >= ``ONEDL_MMDEPLOY_FIXED`` (1.5.0), which makes both changes itself, importing it
registers nothing. Without mmdeploy, or with another release (whose code this does not know), the import
fails with one :class:`~mmdet_efficientvit.compat.UnsupportedStackError` naming the install command.
"""
from packaging.version import Version

from ..version import MMDEPLOY_INSTALL, MMDEPLOY_VERSION, ONEDL_MMDEPLOY_FIXED
from . import UnsupportedStackError, _distribution_version


def _fix_needed() -> bool:
    """False for onedl-mmdeploy >= ``ONEDL_MMDEPLOY_FIXED``, True for mmdeploy ``MMDEPLOY_VERSION``
    (and the onedl-mmdeploy releases before, which report that version); else ``UnsupportedStackError``
    (one line)."""
    try:
        import mmdeploy
    except ImportError as err:
        raise UnsupportedStackError(
            f'mmdet_efficientvit.compat.mmdeploy needs mmdeploy=={MMDEPLOY_VERSION}, which is not '
            f'importable ({err}). Install it with: {MMDEPLOY_INSTALL}') from None
    onedl = _distribution_version('onedl-mmdeploy')
    if onedl is not None and Version(onedl) >= Version(ONEDL_MMDEPLOY_FIXED):
        return False
    if mmdeploy.__version__ != MMDEPLOY_VERSION:
        raise UnsupportedStackError(
            f'mmdet_efficientvit.compat.mmdeploy fixes mmdeploy=={MMDEPLOY_VERSION}, found '
            f'mmdeploy=={mmdeploy.__version__} (the fix patches that release\'s code; '
            f'onedl-mmdeploy>={ONEDL_MMDEPLOY_FIXED} needs none). Install it with: {MMDEPLOY_INSTALL}')
    return True


FIX_NEEDED = _fix_needed()

import torch  # noqa: E402
from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER  # noqa: E402
from mmdeploy.core.rewriters.rewriter_utils import Checker  # noqa: E402
from mmdeploy.utils import Backend, get_ir_config  # noqa: E402


def torch_onnx_export__torchscript(*args, **kwargs):
    """``torch.onnx.export`` with the TorchScript exporter, the one mmdeploy's rewrites target."""
    ctx = FUNCTION_REWRITER.get_context()
    kwargs.setdefault('dynamo', False)
    return ctx.origin_func(*args, **kwargs)


class OnnxRoiAlignBackends(Checker):
    """The backends for which mmdeploy's RoIAlign symbolic emits ONNX ``RoiAlign``.

    A rewrite with a checker takes precedence over mmdeploy's checker-less default one.
    """

    def check(self, env: dict) -> bool:
        return env['backend'] not in (Backend.TENSORRT, Backend.PPLNN)


def roi_align__onnx(g, input, rois, output_size, spatial_scale: float, sampling_ratio: int,
                    pool_mode: str, aligned: bool):
    """mmcv's RoIAlign as ONNX ``RoiAlign``, as mmdeploy 1.3.1 exports it (``mmdeploy/mmcv/ops/
    roi_align.py``): ``rois`` (K, 5) is split into int64 batch indices and boxes; ``aligned=True``
    is ``half_pixel`` from opset 16, before it (``RoiAlign``-10 has no such attribute) a shift of
    the boxes by half a feature pixel."""
    from torch.onnx.symbolic_helper import _squeeze_helper
    from torch.onnx.symbolic_opset11 import add, select

    def columns(*index: int):
        return select(g, rois, 1, g.op('Constant', value_t=torch.tensor(index, dtype=torch.long)))

    batch_indices = g.op('Cast', _squeeze_helper(g, columns(0), [1]),
                         to_i=torch.onnx.TensorProtoDataType.INT64)
    boxes = columns(1, 2, 3, 4)
    attributes = dict(output_height_i=output_size[0], output_width_i=output_size[1],
                      spatial_scale_f=spatial_scale, sampling_ratio_i=sampling_ratio,
                      mode_s=pool_mode)
    opset = get_ir_config(SYMBOLIC_REWRITER.get_context().cfg).get('opset_version', 11)
    if opset >= 16:
        attributes['coordinate_transformation_mode_s'] = (
            'half_pixel' if aligned else 'output_half_pixel')
    elif aligned:
        boxes = add(g, boxes, g.op('Constant', value_t=torch.tensor([-0.5 / spatial_scale])))
    return g.op('RoiAlign', input, boxes, batch_indices, **attributes)


if FIX_NEEDED:
    FUNCTION_REWRITER.register_rewriter('torch.onnx.export')(torch_onnx_export__torchscript)
    SYMBOLIC_REWRITER.register_symbolic('mmcv.ops.roi_align.__self__',
                                        extra_checkers=OnnxRoiAlignBackends())(roi_align__onnx)
