"""The DemoShapes generator: deterministic, valid COCO, exact annotations, idempotent."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes
from mmdet_efficientvit.datasets.demo_shapes import render_image

NUM_TRAIN, NUM_VAL, SIZE = 12, 6, (96, 80)


def _files(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes') / 'demo')
    return generate_demo_shapes(root, NUM_TRAIN, NUM_VAL, SIZE, seed=0)


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    again = generate_demo_shapes(str(tmp_path / 'a'), NUM_TRAIN, NUM_VAL, SIZE, seed=0)
    other = generate_demo_shapes(str(tmp_path / 'b'), NUM_TRAIN, NUM_VAL, SIZE, seed=1)
    ref = _files(dataset['root'])
    assert _files(again['root']) == ref
    other_files = _files(other['root'])
    assert other_files.keys() == ref.keys()
    for name in ('train.json', 'val.json', 'train/000000.jpg', 'val/000005.jpg'):
        assert other_files[name] != ref[name], name
    # The drawing itself (not only the encoding) is a pure function of the random stream.
    img1, objs1 = render_image(np.random.default_rng([3, 0, 7]), 64, 64)
    img2, objs2 = render_image(np.random.default_rng([3, 0, 7]), 64, 64)
    np.testing.assert_array_equal(img1, img2)
    assert objs1 == objs2


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_json_is_valid_and_exact(dataset, split):
    coco = COCO(dataset[f'{split}_ann'])
    w, h = SIZE
    num = dataset[f'num_{split}']
    assert sorted(coco.getImgIds()) == list(range(1, num + 1))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(DEMO_SHAPES_CLASSES)
    for img in coco.loadImgs(coco.getImgIds()):
        assert (img['width'], img['height']) == SIZE
        assert osp.isfile(osp.join(dataset[f'{split}_img_dir'], img['file_name']))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= num  # at least one object per image
    assert len({a['id'] for a in anns}) == len(anns)
    for a in anns:
        x, y, bw, bh = a['bbox']
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 4 and bh > 4
        assert a['iscrowd'] == 0 and a['category_id'] in coco.getCatIds()
        # bbox is the polygon's extent; bbox and area agree with pycocotools' rasterisation
        # (thin star tips may miss pixel centres, hence the few-pixel tolerance).
        poly = np.array(a['segmentation'][0]).reshape(-1, 2)
        np.testing.assert_allclose([*poly.min(0), *(poly.max(0) - poly.min(0))], a['bbox'],
                                   atol=0.02)
        rle = mask_utils.merge(mask_utils.frPyObjects(a['segmentation'], h, w))
        assert abs(float(mask_utils.area(rle)) - a['area']) <= 0.1 * a['area'] + 8
        assert np.allclose(mask_utils.toBbox(rle), a['bbox'], atol=3)
        assert a['area'] <= bw * bh + 1e-6


def test_variety_and_overlap(tmp_path):
    out = generate_demo_shapes(str(tmp_path / 'v'), 40, 1, 128, seed=0)
    coco = COCO(out['train_ann'])
    anns = coco.loadAnns(coco.getAnnIds())
    assert {a['category_id'] for a in anns} == set(range(1, len(DEMO_SHAPES_CLASSES) + 1))
    sides = np.array([max(a['bbox'][2:]) for a in anns])
    ratios = np.array([a['bbox'][2] / a['bbox'][3] for a in anns])
    assert sides.max() / sides.min() > 2.5  # varied size
    assert ratios.min() < 0.6 and ratios.max() > 1.6  # varied aspect ratio
    overlapping = 0
    for img_id in coco.getImgIds():
        boxes = [a['bbox'] for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        ious = mask_utils.iou(boxes, boxes, [0] * len(boxes)) if boxes else np.zeros((0, 0))
        overlapping += int((np.triu(ious, 1) > 0).any())
    assert overlapping >= 3
    img = coco.loadImgs(1)[0]
    import cv2
    pixels = cv2.imread(osp.join(out['train_img_dir'], img['file_name']))
    assert pixels.shape == (128, 128, 3) and pixels.std() > 10  # textured, not flat


def test_idempotent_and_regenerates_on_change(tmp_path):
    root = str(tmp_path / 'idem')
    first = generate_demo_shapes(root, 3, 2, 64, seed=5)
    assert first['generated']
    stamp = {p: osp.getmtime(osp.join(root, p)) for p in _files(root)}
    second = generate_demo_shapes(root, 3, 2, 64, seed=5)
    assert not second['generated']
    assert {p: osp.getmtime(osp.join(root, p)) for p in _files(root)} == stamp

    # Another seed or size: the folder is rebuilt to match the request.
    third = generate_demo_shapes(root, 4, 2, 64, seed=6)
    assert third['generated']
    meta = json.load(open(osp.join(root, 'meta.json')))
    assert meta['seed'] == 6 and meta['num_train'] == 4
    assert len(os.listdir(osp.join(root, 'train'))) == 4

    # A missing image makes the copy incomplete: it is regenerated, not reused.
    os.remove(osp.join(root, 'val', '000001.jpg'))
    assert generate_demo_shapes(root, 4, 2, 64, seed=6)['generated']
    assert osp.isfile(osp.join(root, 'val', '000001.jpg'))


def test_refuses_foreign_folder_and_bad_args(tmp_path):
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not a DemoShapes folder'):
        generate_demo_shapes(str(foreign), 2, 1, 64)
    assert (foreign / 'notes.txt').read_text() == 'mine'
    with pytest.raises(ValueError, match='img_size'):
        generate_demo_shapes(str(tmp_path / 'x'), 2, 1, 8)
    with pytest.raises(ValueError, match='num_train'):
        generate_demo_shapes(str(tmp_path / 'x'), 0, 1, 64)
