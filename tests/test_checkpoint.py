"""Checkpoint loading: parity with timm in every layout, conversions, and the errors for bad inputs.

Checkpoints are made here in the real formats (timm's layout, the official ImageNet release, an
mmdet 2.x detector, safetensors, our deployed layout) from randomly initialised models.
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mmdet_efficientvit.models.backbones.efficientvit import EfficientViT
from mmdet_efficientvit.errors import CheckpointError
from mmdet_efficientvit.model_zoo import ARCHS

from _data import max_rel_err, official_bias_idxs, randomize

pytestmark = pytest.mark.usefixtures('single_thread')


def timm_to_official_release(timm_sd: dict) -> dict:
    """An official ImageNet-release style checkpoint from timm weights (key map written here,
    independent of the converter under test): ``{'model': ...}`` with head and idxs buffers."""
    out = {}
    for key, value in timm_sd.items():
        parts = key.split('.')
        if parts[0] == 'patch_embed':  # conv1..conv4 -> 0, 2, 4, 6 (ReLUs in between)
            parts[1] = str(2 * (int(parts[1][len('conv'):]) - 1))
        elif parts[0] == 'stages':
            stage = int(parts[1])
            if parts[2] == 'blocks':
                index = int(parts[3]) + (3 if stage else 0)
            else:
                index = ('res1', 'patchmerge', 'res2').index(parts[3])
            parts = [f'blocks{stage + 1}', str(index)] + parts[4:]
        elif parts[0] == 'head' and parts[1] == 'linear':
            parts[1] = 'l'
        parts = ['c' if p == 'conv' else p for p in parts]
        out['.'.join(parts)] = value
    for key in [k for k in out if k.endswith('attention_biases')]:
        side = math.isqrt(out[key].shape[1])
        out[key[:-len('attention_biases')] + 'attention_bias_idxs'] = official_bias_idxs(side)
    return {'model': out}


def load_through_init_cfg(path, **kwargs) -> EfficientViT:
    model = EfficientViT(init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('arch', ARCHS)
@torch.no_grad()
def test_parity_with_timm_in_timm_and_official_layouts(arch, tmp_path):
    for size in (224, 240, 320, 416):  # 240 and 416 pad the stage-1/2 maps to the window
        ref_model = randomize(timm.create_model(f'efficientvit_{arch}', img_size=size),
                              seed=size).eval()
        windows = [stage.blocks[0].mixer.m.attn.resolution for stage in ref_model.stages]
        assert windows == [min(7, math.ceil(size / 16 / 2**i)) for i in range(3)]
        x = torch.randn(1, 3, size, size)
        ref = ref_model.forward_intermediates(x, intermediates_only=True)
        timm_path, official_path = tmp_path / f'timm_{size}.pth', tmp_path / f'off_{size}.pth'
        torch.save(ref_model.state_dict(), timm_path)
        torch.save(timm_to_official_release(ref_model.state_dict()), official_path)
        for path in (timm_path, official_path):
            outs = load_through_init_cfg(path, arch=arch, window_size=windows)(x)
            assert len(outs) == 3
            for out, r in zip(outs, ref, strict=True):
                assert out.shape == r.shape
                assert max_rel_err(out, r) < 1e-4, (arch, size, path.name)


@torch.no_grad()
def test_safetensors_in_timm_layout(tmp_path):
    ref_model = randomize(timm.create_model('efficientvit_m1')).eval()
    path = tmp_path / 'model.safetensors'
    # as safetensors exports often are: without BatchNorm's num_batches_tracked counters
    weights = {k: v.contiguous() for k, v in ref_model.state_dict().items()
               if not k.endswith('num_batches_tracked')}
    save_file(weights, str(path))
    x = torch.randn(1, 3, 224, 224)
    outs = load_through_init_cfg(path, arch='m1', window_size=(7, 7, 4))(x)
    ref = ref_model.forward_intermediates(x, intermediates_only=True)
    for out, r in zip(outs, ref, strict=True):
        assert max_rel_err(out, r) < 1e-4


@torch.no_grad()
def test_imagenet_release_tables_resized_bicubically(tmp_path, log_lines):
    """The ImageNet models have a 4×4 stage-3 table; the detection window is 7 (resized + logged)."""
    ref_model = randomize(timm.create_model('efficientvit_m4'))
    release = timm_to_official_release(ref_model.state_dict())
    path = tmp_path / 'efficientvit_m4.pth'
    torch.save(release, path)
    model = load_through_init_cfg(path, arch='m4')  # window (7, 7, 7)
    assert any("official ImageNet release layout ('model' key)" in m for m in log_lines)
    assert any('dropped 7 classifier head keys, 6 attention_bias_idxs buffers' in m
               for m in log_lines)
    assert any('resized 3 attention_biases tables from 4x4 to 7x7 windows (bicubic)' in m
               for m in log_lines)
    key = 'blocks3.4.mixer.m.attn.attention_biases'
    table = release['model'][key]
    expected = F.interpolate(table.view(1, 4, 4, 4), size=(7, 7), mode='bicubic',
                             align_corners=False).view(4, 49)
    assert torch.allclose(model.state_dict()[key], expected)
    assert torch.equal(model.state_dict()['blocks1.0.mixer.m.attn.attention_biases'],
                       release['model']['blocks1.0.mixer.m.attn.attention_biases'])


def detector_checkpoint(backbone_sd: dict) -> dict:
    """Like the official mmdet 2.x RetinaNet release: ``state_dict`` with backbone/neck/head keys."""
    state_dict = {f'backbone.{k}': v for k, v in backbone_sd.items()}
    for key, value in list(backbone_sd.items()):
        if key.endswith('attention_biases'):
            side = math.isqrt(value.shape[1])
            state_dict[f'backbone.{key[:-len("attention_biases")]}attention_bias_idxs'] = \
                official_bias_idxs(side)
    state_dict.update({
        'neck.lateral_convs.0.conv.weight': torch.randn(256, 128, 1, 1),
        'neck.extra_trans_convs.0.conv.weight': torch.randn(256, 256, 2, 2),
        'bbox_head.retina_cls.weight': torch.randn(720, 256, 3, 3),
    })
    return {'meta': {'mmdet_version': '2.25.1', 'epoch': 12}, 'state_dict': state_dict}


@torch.no_grad()
def test_mmdet_detector_checkpoint_loads(tmp_path, log_lines):
    source = randomize(EfficientViT('m4')).eval()
    path = tmp_path / 'retinanet_efficientvit_m4_fpn_1x_coco.pth'
    torch.save(detector_checkpoint(source.state_dict()), path)
    model = load_through_init_cfg(path, arch='m4')
    assert any("mmdet detector checkpoint: took" in m and 'ignored 3 neck/head keys' in m
               for m in log_lines)
    x = torch.randn(1, 3, 200, 300)
    for out, ref in zip(model(x), source(x), strict=True):
        assert torch.equal(out, ref)


def test_builds_from_registry_with_init_cfg(tmp_path):
    from mmdet.registry import MODELS
    source = randomize(EfficientViT('m0'))
    path = tmp_path / 'm0.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    # mmengine runs the other initialisers first; the checkpoint must win
    init_cfg = [dict(type='Constant', layer='Conv2d', val=0.),
                dict(type='Pretrained', checkpoint=str(path), prefix='')]
    model = MODELS.build(dict(type='EfficientViT', arch='M0', out_indices=(1, 2),
                              init_cfg=init_cfg))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_checkpoint_of_another_arch_raises(tmp_path):
    path = tmp_path / 'efficientvit_m0.pth'
    torch.save(timm_to_official_release(timm.create_model('efficientvit_m0').state_dict()), path)
    with pytest.raises(CheckpointError) as err:
        load_through_init_cfg(path, arch='m4')
    message = str(err.value)
    assert str(path) in message and 'EfficientViT-M4 backbone' in message
    assert 'looks like EfficientViT-M0' in message
    assert 'mis-shaped keys' in message and 'patch_embed.0.c.weight (8, 3, 3, 3) vs (16, 3, 3, 3)' \
        in message


def test_detector_with_another_backbone_raises(tmp_path):
    resnet_like = {f'backbone.{k}': torch.zeros(4) for k in (
        'conv1.weight', 'bn1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight',
        'layer1.0.bn1.bias')}
    resnet_like['neck.lateral_convs.0.conv.weight'] = torch.zeros(4)
    path = tmp_path / 'retinanet_r18.pth'
    torch.save({'state_dict': resnet_like}, path)
    with pytest.raises(CheckpointError, match='no EfficientViT backbone') as err:
        load_through_init_cfg(path, arch='m0')
    assert 'missing keys' in str(err.value) and 'unexpected keys: conv1.weight' in str(err.value)


def test_truncated_state_dict_lists_missing_keys(tmp_path):
    state_dict = EfficientViT('m2').state_dict()
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith('blocks3.5.')}
    path = tmp_path / 'partial.pth'
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r'missing keys: blocks3\.5\.dw0\.m\.c\.weight'):
        load_through_init_cfg(path, arch='m2')


@pytest.mark.parametrize('content', [b'not a checkpoint at all\n', 'truncated'])
def test_corrupted_file_raises_naming_it(tmp_path, content):
    path = tmp_path / 'broken.pth'
    if content == 'truncated':
        good = tmp_path / 'good.pth'
        torch.save(EfficientViT('m0').state_dict(), good)
        content = good.read_bytes()[:50_000]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f'{path} is not a readable checkpoint'):
        load_through_init_cfg(path, arch='m0')
    bad_st = tmp_path / 'broken.safetensors'
    bad_st.write_bytes(b'\x00' * 64)
    with pytest.raises(CheckpointError, match='broken.safetensors is not a readable checkpoint'):
        load_through_init_cfg(bad_st, arch='m0')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_through_init_cfg(tmp_path / 'missing.pth', arch='m0')


def test_unreachable_url_names_it_and_the_local_alternative(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    url = 'http://127.0.0.1:9/x.pth'
    with pytest.raises(CheckpointError) as err:
        load_through_init_cfg(url, arch='m0')
    message = str(err.value)
    assert url in message and "checkpoint='/path/to/x.pth'" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(message.splitlines()) == 1


def test_offline_timm_hub_id_names_it(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(CheckpointError, match=r"timm/efficientvit_m4\.r224_in1k.*local file"):
        load_through_init_cfg('timm/efficientvit_m4.r224_in1k', arch='m4')


@torch.no_grad()
def test_deployed_checkpoint_round_trip(tmp_path, log_lines):
    source = randomize(EfficientViT('m3')).eval()
    x = torch.randn(1, 3, 160, 224)
    ref = source(x)
    unfused_path = tmp_path / 'unfused.pth'
    torch.save(source.state_dict(), unfused_path)
    source.switch_to_deploy()
    deployed_path = tmp_path / 'deployed.pth'
    torch.save(source.state_dict(), deployed_path)

    deployed = load_through_init_cfg(deployed_path, arch='m3', deploy=True)
    assert any('deployed (BN-folded) layout' in m for m in log_lines)
    # an unfused checkpoint for a deploy=True backbone is folded while loading
    folded = load_through_init_cfg(unfused_path, arch='m3', deploy=True)
    for model in (deployed, folded):
        for out, r in zip(model(x), ref, strict=True):
            assert max_rel_err(out, r) < 1e-5
    with pytest.raises(CheckpointError, match='build the backbone with deploy=True'):
        load_through_init_cfg(deployed_path, arch='m3')
