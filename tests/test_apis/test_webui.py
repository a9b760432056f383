"""The demo page (``mmdet_efficientvit.apis.webui``, ``tools/webui.py``): what it draws and tabulates
against ``tools/demo.py`` and mmdet's own inference, in a real headless Chromium (Playwright), its
refusals, and its startup errors.

One small RetinaNet-M0 (32-channel neck and head, 4 classes, random weights with randomised BN and a
zero classification bias, so scores are near 0.5; at most 5 detections, all in view in the
page's table) is saved as a checkpoint and exported as an
end-to-end ONNX graph; the page offers both. References are independent of the page: the PNG that
``tools/demo.py`` writes, and mmdet's ``inference_detector`` with torchvision's NMS for the table.

The browser test skips, with the reason, only where no Chromium is found (``tools/install_browser.sh``
installs Debian's, or ``WEBUI_BROWSER`` names a Chrome/Chromium binary) or Gradio/Playwright are not
installed. With ``WEBUI_SCREENSHOT=PATH`` it saves a screenshot of the page with a sample's result
there, drawn by the model of ``WEBUI_SCREENSHOT_CONFIG`` / ``WEBUI_SCREENSHOT_CHECKPOINT`` if given
(docs/webui.png: ``make demo``'s RetinaNet).
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import socket

import cv2
import numpy as np
import pytest
import torch

from _data import REPO, free_port, load_tool, mmdet_predictions, tiny_config, tool_env

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.apis.inference import (OnnxDetector, PytorchDetector,  # noqa: E402
                                               draw_detections, for_drawing)
from mmdet_efficientvit.apis.webui import DemoPage  # noqa: E402
from mmdet_efficientvit.datasets.demo_shapes import (DEMO_SHAPES_CLASSES,  # noqa: E402
                                                     generate_demo_shapes)
from mmdet_efficientvit.errors import ConfigError, SetupError  # noqa: E402
from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm  # noqa: E402
from mmdet_efficientvit.models.builders import build_detector  # noqa: E402

# DemoShapes images of 96x64 resized by the test pipeline to 192x128, a multiple of the pad divisor:
# the graph's and mmdet's boxes agree (tests/test_deployment/test_end2end/test_anchor_heads.py).
IMG_SIZE = (96, 64)
SCALE = (192, 128)
DEDUP_IOU = 0.7  # tools/demo.py's default, and the page's
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def clear_threshold(scores: np.ndarray) -> float:
    """A score threshold on the slider's 0.01 grid, below 0.5 and all scores, that no score comes
    within 0.003 of (so rounding cannot move a detection across it)."""
    for k in range(50, 0, -1):
        if (scores - k / 100).min() > 0.003:
            return k / 100
    raise AssertionError(f'no clear threshold below scores {sorted(scores)}')


def reference_rows(prediction: dict, score_thr: float) -> list:
    """The table the page must show: mmdet's detections above ``score_thr``, class-agnostic NMS at
    ``DEDUP_IOU`` (torchvision's), best first, rounded as the page rounds."""
    from torchvision.ops import nms
    keep = prediction['scores'] > score_thr
    boxes, scores = (torch.from_numpy(prediction[k][keep]) for k in ('bboxes', 'scores'))
    labels = prediction['labels'][keep]
    order = nms(boxes, scores, DEDUP_IOU).numpy()
    return [[DEMO_SHAPES_CLASSES[labels[i]], round(float(scores[i]), 3),
             *(round(float(v), 1) for v in boxes[i])] for i in order]


def assert_rows_close(rows: list, expected: list, atol: float) -> None:
    assert [r[0] for r in rows] == [r[0] for r in expected], (rows, expected)
    np.testing.assert_allclose(np.array([r[1:] for r in rows], float),
                               np.array([r[1:] for r in expected], float), atol=atol)


@pytest.fixture(scope='module')
def models(tmp_path_factory, single_thread):
    """Config, checkpoint, end-to-end graph, one image, a clear threshold and what tools/demo.py
    draws for that image at that threshold."""
    root = tmp_path_factory.mktemp('webui')
    data = generate_demo_shapes(str(root / 'shapes'), num_train=1, num_val=2, img_size=IMG_SIZE,
                                seed=3)
    tiny_config(root / 'tiny_base.py', root / 'shapes', img_size=SCALE)
    cfg = root / 'tiny.py'
    cfg.write_text("_base_ = 'tiny_base.py'\nmodel = dict(test_cfg=dict(max_per_img=5))\n")
    cfg = str(cfg)
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector(cfg), seed=0)
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)
    ckpt = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    onnx = str(root / 'tiny_e2e.onnx')
    load_tool('deployment/export_onnx.py').main(
        [cfg, '--checkpoint', ckpt, '--end2end', '--shape', '128x192', '--check-sizes', '128x192',
         '--check-batch', '1', '--out', onnx])
    image = osp.join(data['val_img_dir'], '000000.jpg')
    prediction, = mmdet_predictions(cfg, ckpt, [image])
    thr = clear_threshold(prediction['scores'])
    rows = reference_rows(prediction, thr)
    assert len(rows) >= 2, rows  # something to draw and compare
    demo_png, = load_tool('demo.py').main([image, cfg, ckpt, '--out-dir', str(root / 'demo'),
                                           '--score-thr', str(thr)])
    return dict(root=root, cfg=cfg, ckpt=ckpt, onnx=onnx, image=image, thr=thr, rows=rows,
                demo=cv2.imread(demo_png))


@pytest.fixture(scope='module')
def page(models):
    """The page offering the PyTorch detector and its graph under onnxruntime; uploads up to 1 MB.
    With ``WEBUI_SCREENSHOT_CONFIG`` and ``WEBUI_SCREENSHOT_CHECKPOINT`` (a trained model for the
    screenshot, e.g. ``make demo``'s) it offers that detector too."""
    detectors = [PytorchDetector(models['cfg'], models['ckpt']), OnnxDetector(models['onnx'])]
    if os.environ.get('WEBUI_SCREENSHOT_CONFIG'):
        detectors.append(PytorchDetector(os.environ['WEBUI_SCREENSHOT_CONFIG'],
                                         os.environ['WEBUI_SCREENSHOT_CHECKPOINT']))
    page = DemoPage(detectors, str(models['root'] / 'out'), score_thr=models['thr'],
                    dedup_iou=DEDUP_IOU, max_upload_mb=1)
    yield page
    if page.blocks is not None:
        page.blocks.close()


def test_page_draws_what_the_demo_tool_writes(page, models, tmp_path):
    """Each detector's picture and table for one image: PyTorch's picture is tools/demo.py's PNG
    pixel for pixel and its table mmdet's detections; the graph's agree with them."""
    torch_name, onnx_name = list(page.detectors)[:2]
    assert torch_name == 'PyTorch: tiny (tiny.pth, cpu)'
    assert onnx_name == 'ONNX: tiny_e2e.onnx (onnxruntime (CPUExecutionProvider))'
    picture, rows, status = page.run(models['image'], 'shapes.jpg', torch_name, models['thr'])
    np.testing.assert_array_equal(picture[..., ::-1], models['demo'])
    assert rows == models['rows']
    assert re.fullmatch(rf'shapes.jpg: {len(rows)} detections drawn \(\d+ above '
                        rf'{models["thr"]:.2f}\) in [\d.]+ ms \(image file to detections\) by '
                        f'{re.escape(torch_name)}', status), status

    onnx_picture, onnx_rows, status = page.run(models['image'], 'shapes.jpg', onnx_name,
                                               models['thr'])
    assert_rows_close(onnx_rows, models['rows'], atol=0.11)  # rounding of equal detections
    assert (onnx_picture != picture).any(-1).mean() < 0.005  # sub-pixel box differences at most
    assert status.endswith(onnx_name)

    # a higher threshold draws fewer; the samples are images the detectors read
    _, fewer, _ = page.run(models['image'], 'shapes.jpg', torch_name, 0.99)
    assert fewer == [r for r in rows if r[1] > 0.99]
    assert [osp.basename(p) for p in page.samples] == ['shapes_0.png', 'shapes_1.png',
                                                       'shapes_2.png']
    assert all(cv2.imread(p).shape == (256, 256, 3) for p in page.samples)

    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    with pytest.raises(SetupError, match=r'^notes.png is not an image .*: drop a PNG, JPEG'):
        page.run(str(text), 'notes.png', torch_name, 0.5)
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(SetupError, match='empty.jpg is not an image'):
        page.run(str(tmp_path / 'empty.jpg'), 'empty.jpg', onnx_name, 0.5)

    # the graph under OpenVINO (--runtime openvino) too
    pytest.importorskip('openvino', reason='OpenVINO is not installed (make setup installs it)')
    openvino = OnnxDetector(models['onnx'], 'openvino')
    assert openvino.name == 'ONNX: tiny_e2e.onnx (OpenVINO (CPU, f32))'
    page.detectors[openvino.name] = openvino
    try:
        _, openvino_rows, _ = page.run(models['image'], 'shapes.jpg', openvino.name, models['thr'])
    finally:
        del page.detectors[openvino.name]
    assert_rows_close(openvino_rows, models['rows'], atol=0.11)


def browser_binary() -> str:
    """The Chromium the browser tests drive (``WEBUI_BROWSER`` or one on PATH), else skip."""
    path = os.environ.get('WEBUI_BROWSER') or next(filter(None, map(shutil.which, BROWSERS)), None)
    if not path:
        pytest.skip('no Chromium found: run tools/install_browser.sh (root, Debian/Ubuntu apt) or set '
                    'WEBUI_BROWSER to a Chrome/Chromium binary')
    return path


@pytest.mark.slow
def test_page_in_a_browser(page, models, tmp_path, monkeypatch):
    """In headless Chromium: the page loads without fetching anything from elsewhere; an uploaded
    image gives tools/demo.py's picture and mmdet's table for each detector; a sample gives a result;
    a file that is not an image and one above the upload limit get a message on the page, which
    keeps working; uploads are stored under the output folder only."""
    pytest.importorskip('gradio', reason='the demo page needs Gradio (pip install gradio)')
    sync_api = pytest.importorskip('playwright.sync_api',
                                   reason='the browser test needs Playwright (pip install playwright)')
    browser_path = browser_binary()
    screenshot = os.environ.get('WEBUI_SCREENSHOT')
    screenshot = osp.abspath(screenshot) if screenshot else None  # before the change of folder
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    url = page.launch('127.0.0.1', free_port(), block=False)
    torch_name, onnx_name = list(page.detectors)[:2]
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
        tab = browser.new_page(viewport=dict(width=1280, height=860))
        elsewhere = []
        tab.on('request', lambda r: None if r.url.startswith((url, 'data:', 'blob:'))
               else elsewhere.append(r.url))
        tab.goto(url)
        status = tab.locator('#status textarea')
        upload = tab.locator('#image input[type=file]')

        def result(name: str, detector: str):
            """Wait for the status line of ``name`` by ``detector`` (the picture and table come in
            the same update); the picture (BGR, as Gradio serves it) and the table."""
            expect(status).to_have_value(re.compile(rf'^{re.escape(name)}: .* by '
                                                    rf'{re.escape(detector)}$'), timeout=60000)
            data = tab.request.get(tab.locator('#picture img').get_attribute('src')).body()
            rows = [r.locator('[role=gridcell]').all_inner_texts()
                    for r in tab.locator('#table [role=row]').all()]
            rows = [[r[0], *map(float, r[1:])] for r in rows if r and r[0]]
            return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), rows

        upload.set_input_files(models['image'])
        picture, rows = result('000000.jpg', torch_name)
        np.testing.assert_array_equal(picture, models['demo'])
        assert rows == models['rows']

        tab.locator('#detector input').click()
        tab.get_by_role('option', name=onnx_name).click()
        picture, rows = result('000000.jpg', onnx_name)
        assert_rows_close(rows, models['rows'], atol=0.11)
        assert (picture != models['demo']).any(-1).mean() < 0.005

        text = tmp_path / 'notes.png'
        text.write_text('not an image')
        upload.set_input_files(str(text))
        expect(status).to_have_value(re.compile(r'^notes.png is not an image'))
        expect(tab.get_by_text(re.compile('notes.png is not an image')).first).to_be_visible()

        big = tmp_path / 'big.png'
        cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 256, (800, 800, 3), np.uint8))
        assert big.stat().st_size > 2**20
        upload.set_input_files(str(big))
        expect(tab.get_by_text(re.compile('exceed the maximum allowed size')).first).to_be_visible()

        samples = tab.locator('#samples button, #samples td, #samples .gallery-item')
        samples.first.click()
        picture, rows = result('shapes_0.png', onnx_name)
        expected, expected_rows, _ = page.run(page.samples[0], 'shapes_0.png', onnx_name,
                                              models['thr'])
        np.testing.assert_array_equal(picture, expected[..., ::-1])
        assert rows == expected_rows

        upload.set_input_files(models['image'])  # still working after the refusals
        picture, rows = result('000000.jpg', onnx_name)
        assert_rows_close(rows, models['rows'], atol=0.11)

        if screenshot:  # the page with a sample's result, no messages
            tab.reload()
            shown = list(page.detectors)[-1]  # WEBUI_SCREENSHOT_CONFIG's where given
            tab.locator('#detector input').click()
            tab.get_by_role('option', name=shown).click()
            samples.nth(2).click()
            result('shapes_2.png', shown)
            tab.screenshot(path=screenshot, full_page=True)
        browser.close()
    assert not elsewhere, elsewhere
    assert not os.listdir(cwd)  # nothing written where the page was started
    cache = models['root'] / 'out' / 'cache'
    uploaded = {p.name for p in cache.rglob('*') if p.is_file()}
    assert {'000000.jpg', 'notes.png'} <= uploaded and 'big.png' not in uploaded


@pytest.mark.slow
def test_masks_of_mask_rcnn(tmp_path, single_thread):
    """Mask R-CNN (the demo config, random weights as the exporter prepares them): the PyTorch
    detector's picture, masks included, is tools/demo.py's PNG; its end-to-end graph's detections
    carry the pasted masks, drawn on the picture, which matches within mask edges."""
    from mmdet_efficientvit.deployment.end2end import randomize_for_check
    cfg = tmp_path / 'mask_rcnn.py'
    cfg.write_text(f"_base_ = {str(REPO / 'configs/demo/mask_rcnn_evit_demo_shapes.py')!r}\n"
                   'model = dict(test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50), '
                   'rcnn=dict(max_per_img=5)))\n')
    torch.manual_seed(0)
    model = randomize_for_check(build_detector(str(cfg)))
    ckpt = str(tmp_path / 'mask_rcnn.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    onnx = str(tmp_path / 'mask_rcnn.onnx')
    load_tool('deployment/export_onnx.py').main(
        [str(cfg), '--checkpoint', ckpt, '--end2end', '--shape', '192x256', '--check-sizes',
         '192x256', '--check-batch', '1', '--out', onnx])
    data = generate_demo_shapes(str(tmp_path / 'shapes'), 1, 1, (256, 192), seed=1)
    image = osp.join(data['val_img_dir'], '000000.jpg')
    demo_png, = load_tool('demo.py').main([image, str(cfg), ckpt, '--out-dir',
                                           str(tmp_path / 'demo'), '--score-thr', '0.3'])
    page = DemoPage([PytorchDetector(str(cfg), ckpt), OnnxDetector(onnx)], str(tmp_path / 'out'))
    torch_name, onnx_name = page.detectors
    picture, rows, _ = page.run(image, 'shapes.jpg', torch_name, 0.3)
    np.testing.assert_array_equal(picture[..., ::-1], cv2.imread(demo_png))
    assert rows and 'masks' in page.detectors[torch_name](image).pred_instances

    pred = page.detectors[onnx_name](image)
    assert pred.pred_instances.masks.shape[1:] == (192, 256) and pred.pred_instances.masks.any()
    onnx_picture, onnx_rows, _ = page.run(image, 'shapes.jpg', onnx_name, 0.3)
    assert_rows_close(onnx_rows, rows, atol=0.2)
    assert (onnx_picture != picture).any(-1).mean() < 0.02  # mask edges (IoU > 0.98)
    without_masks = pred.clone()
    del without_masks.pred_instances.masks
    boxes_only = draw_detections(page.detectors[onnx_name].visualizer, cv2.imread(image),
                                 for_drawing(without_masks, 0.3, DEDUP_IOU), 0.3)
    assert (onnx_picture != boxes_only).any(-1).mean() > 0.05  # the masks are drawn


# --------------------------------------------------------------------------- bad startup input
def plain_onnx(path) -> str:
    """A valid ONNX graph that is not an end-to-end detector."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', ['input'], ['out'])], 'g',
                              [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    return str(path)


def test_bad_startup_arguments(models, tmp_path, monkeypatch):
    """Each mistake is one line naming the fix, before any page starts."""
    tool = load_tool('webui.py')
    out = str(tmp_path / 'out')
    with monkeypatch.context() as without_gradio:
        without_gradio.setitem(sys.modules, 'gradio', None)  # import gradio raises ImportError
        with pytest.raises(SetupError, match='needs Gradio.*: pip install gradio'):
            tool.main(['--onnx', models['onnx'], '--out-dir', out])
    pytest.importorskip('gradio', reason='the demo page needs Gradio (pip install gradio)')
    backbone_only = tmp_path / 'backbone.py'
    backbone_only.write_text("custom_imports = dict(imports=['mmdet_efficientvit'])\n"
                             "model = dict(type='EfficientViT', arch='m0')\n")
    cfg, ckpt = models['cfg'], models['ckpt']
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        cases = [
            ([], SetupError, 'no detector to offer: pass --config CFG --checkpoint CKPT'),
            (['--onnx', str(tmp_path / 'no.onnx')], SetupError, 'not found: pass the .onnx written '
             'by export_onnx.py --end2end'),
            (['--onnx', plain_onnx(tmp_path / 'plain.onnx')], SetupError,
             'is not an end-to-end detector .*export_onnx.py CONFIG --checkpoint CKPT --end2end'),
            (['--config', str(backbone_only), '--checkpoint', ckpt], ConfigError,
             "is not a detector config \\(its model type is 'EfficientViT'.*pass a detector config"),
            (['--config', str(tmp_path / 'no.py'), '--checkpoint', ckpt], SetupError,
             'no.py not found: pass a config file'),
            (['--config', cfg, '--checkpoint', str(tmp_path / 'no.pth')], SetupError,
             'no.pth not found: pass the .pth'),
            (['--config', cfg], SetupError, '1 --config but 0 --checkpoint'),
            (['--onnx', models['onnx'], '--port', str(taken.getsockname()[1])], SetupError,
             'cannot listen on 127.0.0.1:.*pass another --port'),
            (['--onnx', models['onnx'], '--onnx', models['onnx']], SetupError, 'offered twice'),
        ]
        for argv, kind, message in cases:
            port = [] if '--port' in argv else ['--port', str(free_port())]
            with pytest.raises(kind, match=message) as err:
                tool.main(argv + port + ['--out-dir', out])
            assert '\n' not in str(err.value), argv
    assert not os.path.exists(out)  # refused before writing anything


def outside_address():
    """This machine's IPv4 address on its default route (no packet is sent), None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(('192.0.2.1', 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith('127.') else address


@pytest.mark.slow
def test_command_starts_the_page_and_refuses_with_exit_2(models, tmp_path):
    """``mmdet-efficientvit webui``: a graph that is not end-to-end is one ``error:`` line and exit
    status 2; a good one prints the URL, on 127.0.0.1, which serves the page."""
    pytest.importorskip('gradio', reason='the demo page needs Gradio (pip install gradio)')
    import urllib.request
    cmd = [sys.executable, '-m', 'mmdet_efficientvit', 'webui']
    bad = subprocess.run(cmd + ['--onnx', plain_onnx(tmp_path / 'plain.onnx')], cwd=tmp_path,
                         env=tool_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stderr
    line, = bad.stderr.strip().splitlines()
    assert line.startswith('error: ') and '--end2end' in line

    port = free_port()
    server = subprocess.Popen(cmd + ['--onnx', models['onnx'], '--port', str(port), '--out-dir',
                                     str(tmp_path / 'out')], cwd=tmp_path, env=tool_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith(f'demo page: http://127.0.0.1:{port}/ '), first
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=30) as reply:
            assert reply.status == 200 and b'EfficientViT detectors' in reply.read()
        address = outside_address()
        if address:  # not reachable through the machine's network address
            with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port)):
                pass
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(os.listdir(tmp_path)) == ['out', 'plain.onnx']
