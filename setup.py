"""Packaging for mmdet-efficientvit (the version and dependency ranges live in
``mmdet_efficientvit/version.py``).

As OpenMMLab packages do, the package carries the repository's configs, tools and model index under
``mmdet_efficientvit/.mim/`` (where mmengine resolves ``mmdet_efficientvit::...`` configs and
``mmdet_efficientvit.resources`` finds them): a wheel gets copies, written into the build directory only;
an editable install gets relative symlinks in the source tree (git-ignored).
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
PACKAGE = 'mmdet_efficientvit'
RUNTIME = 'mmdet_efficientvit_runtime'
# Shipped under <package>/.mim/ (mmengine reads model-index.yml, then configs/<path>).
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def version_info() -> dict:
    """``mmdet_efficientvit/version.py`` executed on its own (importing the package needs the stack)."""
    namespace: dict = {}
    with open(osp.join(ROOT, PACKAGE, 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace


class BuildPyWithMim(build_py):
    """build_py plus ``<package>/.mim/``: copies in the build directory, or links for ``pip install -e``."""

    def run(self) -> None:
        super().run()
        editable = getattr(self, 'editable_mode', False)
        mim = osp.join(ROOT if editable else self.build_lib, PACKAGE, '.mim')
        os.makedirs(mim, exist_ok=True)
        for name in MIM_FILES:
            src, dst = osp.join(ROOT, name), osp.join(mim, name)
            if osp.islink(dst) or osp.isfile(dst):
                os.remove(dst)
            elif osp.isdir(dst):
                shutil.rmtree(dst)
            if editable:
                os.symlink(osp.relpath(src, mim), dst)
            elif osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copy2(src, dst)


info = version_info()
setup(
    name='mmdet-efficientvit',
    version=info['__version__'],
    description="Microsoft's EfficientViT (CVPR 2023) backbone and FPN neck for MMDetection 3.x",
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    # the torch-free runtime (ONNX inference): a top-level module, so importing it skips the package's
    # version guard and registrations, and one file, so users can copy it next to their .onnx
    py_modules=[RUNTIME],
    cmdclass={'build_py': BuildPyWithMim},
    entry_points={'console_scripts': [f'mmdet-efficientvit={PACKAGE}.commands:main']},
    license='Apache-2.0',
    python_requires='>=3.10',
    install_requires=[info['requirement'](*info['TORCH'])] + [
        'timm>=1.0.15',
        'safetensors',
        'huggingface_hub>=0.34',  # hf-hub: weights; its `hf` CLI (named in our messages) came in 0.34
        'pycocotools',
    ],
    # The MMDetection stack is an extra, `[upstream]` (mmengine, mmcv, mmdet) or `[onedl]` (onedl-mmengine,
    # onedl-mmcv, onedl-mmdetection): both install the modules mmengine, mmcv and mmdet, so requiring
    # either one would make pip replace the other's mmcv in an environment that has it (as OpenMMLab's
    # own packages leave mmcv to the `mminstall` extra). The import guard checks whichever is installed.
    # `pip install mmdet-efficientvit[mmdeploy]` adds what mmdeploy imports; mmdeploy itself goes in with
    # --no-deps (info['MMDEPLOY_INSTALL'], docs/deployment.md), as its pins would downgrade protobuf.
    # `[openvino]`: onnx-inference --runtime openvino (onnxruntime stays the default runtime)
    # `[webui]`: the demo page (tools/webui.py); its browser test also needs playwright and Chromium
    extras_require={**{stack: info['stack_requirements'](stack) for stack in info['STACKS']},
                    'mmdeploy': list(info['MMDEPLOY_DEPS']), 'openvino': ['openvino'],
                    'webui': ['gradio>=6']},
)
