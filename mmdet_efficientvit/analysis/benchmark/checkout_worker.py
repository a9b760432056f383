"""Worker of :mod:`.checkouts`: builds cases from their specs and times passes on request.

Run by path (``python checkout_worker.py PAYLOAD``) with a checkout's root first on ``PYTHONPATH``, so
the ``mmdet_efficientvit`` imported here is that checkout's package (only ``build_runner`` of its
``analysis.benchmark.cases`` is used). Hence absolute imports only. Protocol on stdin/stdout: after
``READY``, each line ``I K`` runs case ``I`` ``K`` times and answers the seconds per pass.
"""
import json
import sys
import time

import torch

from mmdet_efficientvit.analysis.benchmark.cases import build_runner


def main(payload: str) -> None:
    args = json.loads(payload)
    torch.set_num_threads(args['threads'])
    runs, inputs = [], []
    for spec, size in args['cases']:
        torch.manual_seed(args['seed'])
        runs.append(build_runner(spec, args['threads']))
        inputs.append(torch.randn(1, 3, *size))
    print('READY', flush=True)
    with torch.no_grad():  # as mmengine's test loop runs predict
        for line in sys.stdin:
            i, passes = (int(v) for v in line.split())
            start = time.perf_counter()
            for _ in range(passes):
                runs[i](inputs[i])
            print((time.perf_counter() - start) / passes, flush=True)


if __name__ == '__main__':
    main(sys.argv[1])
