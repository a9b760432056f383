"""Start the demo page: a local web page where a person picks one of the offered detectors, drops an
image or picks a sample, and sees the detections drawn (as tools/demo.py draws them), their table and
the latency.

    python tools/webui.py --config CFG --checkpoint CKPT [--config CFG2 --checkpoint CKPT2 ...] \
        [--onnx MODEL.onnx ...] [--runtime onnxruntime openvino] [--host 127.0.0.1] [--port 7860] \
        [--out-dir outputs/webui] [--max-upload-mb 10] [--score-thr 0.5] [--dedup-iou 0.7]

Each ``--config`` pairs with the ``--checkpoint`` at the same position (PyTorch, mmdet's
DetInferencer); each ``--onnx`` is a graph from ``export_onnx.py --end2end``, offered once per
``--runtime``. Needs ``pip install gradio``. The page works offline, listens on 127.0.0.1 unless
``--host`` says otherwise, and writes only under ``--out-dir`` (docs/webui.md).
"""
import argparse

from mmdet_efficientvit.errors import SetupError
from mmdet_efficientvit.tools_support import short_errors

RUNTIMES = ('onnxruntime', 'openvino')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Start the demo page (a local web page).')
    parser.add_argument('--config', action='append', default=[],
                        help='a detector config (file or mmdet_efficientvit::<name>); repeatable')
    parser.add_argument('--checkpoint', action='append', default=[],
                        help='the checkpoint of the --config at the same position; repeatable')
    parser.add_argument('--onnx', action='append', default=[],
                        help='an end-to-end graph (export_onnx.py --end2end); repeatable')
    parser.add_argument('--runtime', nargs='+', choices=RUNTIMES, default=['onnxruntime'],
                        help='the runtimes each --onnx graph is offered under (OpenVINO in f32)')
    parser.add_argument('--device', default='cpu', help='PyTorch device, e.g. cpu or cuda:0')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (0.0.0.0 opens the page to the network)')
    parser.add_argument('--port', type=int, default=7860, help='port to listen on')
    parser.add_argument('--out-dir', default='outputs/webui',
                        help='the only folder the page writes to (samples, uploads, pictures)')
    parser.add_argument('--max-upload-mb', type=float, default=10.,
                        help='refuse uploads larger than this (MB)')
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help="the score threshold slider's start value")
    parser.add_argument('--dedup-iou', type=float, default=0.7,
                        help='drawing only: of boxes overlapping by more than this IoU, draw the '
                        'best-scoring one (as tools/demo.py); 1 draws all')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if len(args.config) != len(args.checkpoint):
        raise SetupError(f'{len(args.config)} --config but {len(args.checkpoint)} --checkpoint: pass '
                         'each --config with its --checkpoint')
    from mmdet_efficientvit.apis.inference import OnnxDetector, PytorchDetector
    from mmdet_efficientvit.apis.webui import DemoPage, check_port, import_gradio
    import_gradio()  # before the models load
    check_port(args.host, args.port)
    detectors = [PytorchDetector(cfg, ckpt, args.device)
                 for cfg, ckpt in zip(args.config, args.checkpoint)]
    detectors += [OnnxDetector(path, runtime) for path in args.onnx for runtime in args.runtime]
    DemoPage(detectors, args.out_dir, args.score_thr, args.dedup_iou,
             args.max_upload_mb).launch(args.host, args.port)


if __name__ == '__main__':
    with short_errors(exit_code=2):
        main()
