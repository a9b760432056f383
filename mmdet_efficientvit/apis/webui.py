"""The demo page: a local web page (Gradio) where a person picks one of the detectors it offers, drops an
image or picks a sample, and sees the detections drawn as ``tools/demo.py`` draws them, their table
(class, score, box) and the latency.

Every detector is a :mod:`.inference` detector (PyTorch through mmdet's DetInferencer, or an
end-to-end ONNX graph under onnxruntime or OpenVINO); the picture is :func:`.inference.for_drawing`
and :func:`.inference.draw_detections` of its output, the same two calls ``tools/demo.py`` makes, so
the page shows pixel for pixel the PNG the tool writes for that image.

Local and offline by design:

* Gradio's analytics and version check are off (``GRADIO_ANALYTICS_ENABLED=False``); the page loads
  nothing from the internet (Gradio serves its scripts and fonts itself);
* it listens on 127.0.0.1 unless ``host`` says otherwise;
* uploads above ``max_upload_mb`` are refused by Gradio's upload limit, in the browser and by the
  server, with a message on the page; a file that does not decode as an image is refused with a
  message on the page; the page keeps running;
* everything it writes goes under ``out_dir``: the sample images (``samples/``, generated at start
  by the DemoShapes generator) and Gradio's uploads and shown pictures (``cache/``, Gradio's
  ``GRADIO_TEMP_DIR``, emptied of files older than an hour).
"""
import os
import os.path as osp
import socket
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from ..datasets.demo_shapes import render_image
from ..errors import SetupError
from .inference import Detector, draw_detections, for_drawing

TABLE_HEADERS = ['class', 'score', 'x1', 'y1', 'x2', 'y2']
SAMPLES_DIR = 'samples'  # under out_dir: the generated sample images
CACHE_DIR = 'cache'  # under out_dir: Gradio's uploads and the pictures it shows
CACHE_CLEANUP = (600, 3600)  # every 10 min, delete cached files older than an hour (Gradio's delete_cache)
# pictures fill their boxes (small images scaled up, keeping their aspect ratio)
CSS = '#image img, #picture img {width: 100%; height: 100%; object-fit: contain}'
# A refused upload: one line on the page (status box and a warning toast); the page keeps running.
NOT_AN_IMAGE = ('{name} is not an image that OpenCV can read: drop a PNG, JPEG, BMP, TIFF or '
                'WebP file')


def write_samples(out_dir: str, num: int = 3, size: Tuple[int, int] = (256, 256),
                  seed: int = 0) -> List[str]:
    """``num`` DemoShapes images (``size`` = (w, h)) as PNG files in ``out_dir/samples/``."""
    folder = osp.join(out_dir, SAMPLES_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(num):
        image, _ = render_image(np.random.default_rng([seed, i]), *size)
        paths.append(osp.join(folder, f'shapes_{i}.png'))
        cv2.imwrite(paths[-1], image)
    return paths


def table_rows(drawn, classes: Sequence[str]) -> List[list]:
    """The table of the drawn detections: class name, score (3 decimals), box (x1, y1, x2, y2 in
    image pixels, 1 decimal), in the order they are drawn (best first)."""
    instances = drawn.pred_instances
    return [[classes[label], round(score, 3), *(round(v, 1) for v in box)]
            for box, score, label in zip(instances.bboxes.tolist(), instances.scores.tolist(),
                                         instances.labels.tolist())]


def import_gradio():
    """Gradio, with its analytics and version check off (set before the import); a set-up error
    naming the install where it is missing (it is optional: only the page needs it)."""
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    try:
        import gradio
    except ImportError:
        raise SetupError('the demo page needs Gradio, which is not installed here: pip install '
                         'gradio (or pip install "mmdet-efficientvit[webui]")') from None
    return gradio


def check_port(host: str, port: int) -> None:
    """Refuse a ``host:port`` that cannot be listened on (taken, or not an address of this machine)
    before anything is built."""
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind((host, port))
        except OSError as err:
            raise SetupError(f'cannot listen on {host}:{port} ({err.strerror or err}): pass another '
                             '--port, or a --host of this machine') from None


class DemoPage:
    """The page's logic, without Gradio: the offered ``detectors`` (by name) and one run.

    ``score_thr`` is the slider's start value and ``dedup_iou`` the drawing's de-duplication
    (``tools/demo.py``'s ``--score-thr`` and ``--dedup-iou``).
    """

    def __init__(self, detectors: Sequence[Detector], out_dir: str, score_thr: float = 0.5,
                 dedup_iou: float = 0.7, max_upload_mb: float = 10.):
        self.detectors: Dict[str, Detector] = {}
        for detector in detectors:
            if detector.name in self.detectors:
                raise SetupError(f'{detector.name} is offered twice: pass each model once')
            self.detectors[detector.name] = detector
        if not self.detectors:
            raise SetupError('no detector to offer: pass --config CFG --checkpoint CKPT and/or '
                             '--onnx MODEL.onnx (each may be repeated)')
        if max_upload_mb <= 0:
            raise SetupError(f'--max-upload-mb must be positive, got {max_upload_mb}')
        self.out_dir = osp.abspath(out_dir)
        self.score_thr, self.dedup_iou, self.max_upload_mb = score_thr, dedup_iou, max_upload_mb
        self.samples = write_samples(self.out_dir)
        self.blocks = None  # the Gradio page, once launched
        for detector in self.detectors.values():  # each runs once before the page opens: the first
            detector(self.samples[0])               # latency shown is not a warm-up's

    def run(self, path: str, name: str, choice: str,
            score_thr: float) -> Tuple[np.ndarray, List[list], str]:
        """Detect on the image file ``path`` (``name``: its name on the user's side) with the
        detector ``choice``: the picture (RGB), the table rows and the status line. A file that
        is not an image raises ``SetupError`` with the page's message."""
        try:
            image = mmcv.imread(path)
        except cv2.error:  # OpenCV refuses an empty buffer
            image = None
        if image is None:
            raise SetupError(NOT_AN_IMAGE.format(name=name))
        detector = self.detectors[choice]
        tic = time.perf_counter()
        pred = detector(path)
        ms = 1e3 * (time.perf_counter() - tic)
        drawn = for_drawing(pred, score_thr, self.dedup_iou)
        picture = draw_detections(detector.visualizer, image, drawn, score_thr)
        rows = table_rows(drawn, detector.visualizer.dataset_meta['classes'])
        above = int((pred.pred_instances.scores > score_thr).sum())
        status = (f'{name}: {len(rows)} detections drawn ({above} above {score_thr:.2f}) in '
                  f'{ms:.1f} ms (image file to detections) by {choice}')
        return picture, rows, status

    def build(self):
        """The Gradio page (``gradio.Blocks``)."""
        gr = import_gradio()
        # where Gradio stores uploads and shown files (read as each component is made)
        os.environ['GRADIO_TEMP_DIR'] = osp.join(self.out_dir, CACHE_DIR)

        def on_change(upload: Optional[dict], choice: str, score_thr: float):
            if upload is None:
                return None, [], ''
            name = upload.get('orig_name') or osp.basename(upload['path'])
            try:
                return self.run(upload['path'], name, choice, score_thr)
            except SetupError as err:
                gr.Warning(str(err))
                return None, [], str(err)

        names = list(self.detectors)
        with gr.Blocks(title='EfficientViT detectors', analytics_enabled=False,
                       delete_cache=CACHE_CLEANUP) as page:
            gr.Markdown('## EfficientViT detectors\nPick a detector, then drop an image (up to '
                        f'{self.max_upload_mb:g} MB) or click a sample. Boxes (and masks) are drawn '
                        'as `tools/demo.py` draws them.')
            with gr.Row():
                with gr.Column():
                    choice = gr.Dropdown(names, value=names[0], label='Detector', elem_id='detector')
                    score_thr = gr.Slider(0, 1, value=self.score_thr, step=0.01,
                                          label='Score threshold', elem_id='score-thr')
                    image = gr.Image(type='filepath', image_mode=None, sources=['upload'],
                                     label='Image', height=320, elem_id='image')
                    samples = gr.Examples([[p] for p in self.samples], inputs=[image],
                                          label='Samples (DemoShapes, generated)',
                                          elem_id='samples')
                with gr.Column():
                    picture = gr.Image(label='Detections', format='png', interactive=False,
                                       height=420, buttons=['download', 'fullscreen'],
                                       elem_id='picture')  # no 'share' (to Hugging Face)
                    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False,
                                         label='Drawn detections', elem_id='table')
                    status = gr.Textbox(label='Status', interactive=False, elem_id='status')
            run = dict(fn=on_change, inputs=[image, choice, score_thr],
                       outputs=[picture, table, status], preprocess=False,
                       concurrency_limit=1, concurrency_id='detect', show_progress='minimal')
            # once per upload or sample click (``change`` fires twice for a file that does not
            # decode in the browser either), and for the current image on a new detector/threshold
            image.upload(**run)
            samples.load_input_event.then(**run)
            choice.change(**run)
            score_thr.release(**run)
            image.clear(lambda: (None, [], ''), outputs=[picture, table, status])
        return page

    def launch(self, host: str = '127.0.0.1', port: int = 7860, block: bool = True) -> str:
        """Start the page on ``host:port`` and return its URL; with ``block``, serve until
        interrupted (Ctrl+C)."""
        check_port(host, port)
        self.blocks = page = self.build()
        page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                    max_file_size=int(self.max_upload_mb * 2**20), ssr_mode=False, mcp_server=False,
                    footer_links=[], show_error=False, css=CSS)
        url = f'http://{host}:{port}/'
        print(f'demo page: {url} (detectors: {"; ".join(self.detectors)}; files under '
              f'{self.out_dir})', flush=True)
        if block:
            page.block_thread()
        return url
