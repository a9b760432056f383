"""The ``mmdet-efficientvit`` command (console script, also ``python -m mmdet_efficientvit``): runs one of
the shipped tools, so an installed wheel trains and tests without a checkout::

    mmdet-efficientvit train CONFIG [train.py options]
    mmdet-efficientvit test CONFIG CHECKPOINT [test.py options]
    mmdet-efficientvit dist-train CONFIG NUM_PROCS [train.py options]

CONFIG may be a file or a shipped config's name (``mmdet_efficientvit::retinanet_evit_m4_fpn_1x_coco.py``).
Each command runs the tool exactly as ``python tools/<script> ...`` does in a checkout.
"""
import os
import os.path as osp
import runpy
import subprocess
import sys
from typing import List, Optional

from .resources import tools_dir

# command -> script under tools/
COMMANDS = {
    'train': 'train.py',
    'test': 'test.py',
    'demo': 'demo.py',
    'webui': 'webui.py',
    'export-onnx': 'deployment/export_onnx.py',
    'onnx-inference': 'deployment/onnx_inference.py',
    'check-mmdeploy': 'deployment/check_mmdeploy.py',
    'benchmark': 'analysis_tools/benchmark.py',
    'front': 'analysis_tools/front.py',
    'get-flops': 'analysis_tools/get_flops.py',
    'plot-curve': 'analysis_tools/plot_curve.py',
    'dist-train': 'dist_train.sh',
    'dist-test': 'dist_test.sh',
    'slurm-train': 'slurm_train.sh',
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f'  {name:<{width}}  tools/{script}' for name, script in COMMANDS.items()]
    return ('usage: mmdet-efficientvit COMMAND [ARGS ...]   (COMMAND --help for its options)\n'
            'commands:\n' + '\n'.join(lines))


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        sys.exit(0 if argv else 2)
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f'error: unknown command {command!r}\n{usage()}', file=sys.stderr)
        sys.exit(2)
    script = osp.join(tools_dir(), COMMANDS[command])
    if script.endswith('.sh'):  # launchers: they start this Python on tools/train.py or test.py
        env = dict(os.environ, PYTHON=os.environ.get('PYTHON', sys.executable))
        sys.exit(subprocess.call(['bash', script, *args], env=env))
    sys.argv = [script, *args]
    sys.path.insert(0, osp.dirname(script))  # as `python tools/<script>` has it
    runpy.run_path(script, run_name='__main__')
