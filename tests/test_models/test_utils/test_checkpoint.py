"""Checkpoint loading: parity with timm in every layout, conversions, and the errors for bad inputs.

Checkpoints are made here in the real formats (timm's layout, the official ImageNet release, an
mmdet 2.x detector, safetensors, our deployed layout, timm's Hugging Face Hub repos in a local
huggingface_hub cache) from randomly initialised models. Nothing is downloaded.
"""
import hashlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mmdet_efficientvit.models.backbones.efficientvit import EfficientViT
from mmdet_efficientvit.errors import CheckpointError
from mmdet_efficientvit.model_zoo import ARCHS, hub_checkpoint

from _data import (max_rel_err, official_bias_idxs, randomize, run_tool, tiny_config, tool_env,
                   write_coco_split)

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


class _RunsCode:
    def __reduce__(self):
        return (print, ('this ran while loading',))


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A local http server of ``tmp_path / 'served'``, and torch.hub's cache in ``tmp_path / 'hub'``."""
    import functools
    import http.server
    import threading
    served = tmp_path / 'served'
    served.mkdir()
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_url_downloads_once_and_loads_safely_in_mmengine_too(http_server, tmp_path):
    """An http(s) checkpoint (init_cfg, mmengine's load_checkpoint / load_from) is downloaded into
    torch.hub's cache once and read with weights_only=True; mmengine's own http loader would read
    it with weights_only=False and run a pickle's code."""
    from mmengine.runner import load_checkpoint
    served, base = http_server
    weights = EfficientViT('m0').state_dict()
    torch.save({'state_dict': weights}, served / 'm0.pth')
    model = load_through_init_cfg(f'{base}/m0.pth', arch='m0')
    cached = tmp_path / 'hub' / 'checkpoints' / 'm0.pth'
    assert cached.read_bytes() == (served / 'm0.pth').read_bytes()
    (served / 'm0.pth').unlink()  # the second read is the cached copy's
    fresh = EfficientViT('m0')
    load_checkpoint(fresh, f'{base}/m0.pth', strict=True)
    for loaded in (model.state_dict(), fresh.state_dict()):
        assert all(torch.equal(loaded[key], value) for key, value in weights.items())
    torch.save({'state_dict': {}, 'meta': _RunsCode()}, served / 'evil.pth')
    with pytest.raises(CheckpointError, match=rf'^{base}/evil.pth contains Python objects that safe '
                                              r'loading refuses \(global print\)'):
        load_checkpoint(EfficientViT('m0'), f'{base}/evil.pth')


# --------------------------------------------------------------------------- Hugging Face Hub
HUB_M0 = hub_checkpoint('m0')
HUB_M0_REPO = HUB_M0[len('hf-hub:'):]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty huggingface_hub cache with the network off, as ``HF_HUB_CACHE=<dir> HF_HUB_OFFLINE=1``
    give it (huggingface_hub reads both variables when imported, so the test sets what it read)."""
    import huggingface_hub.constants as hf_constants
    cache = tmp_path / 'hf-cache'
    cache.mkdir()
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    return cache


def publish(cache: Path, repo_id: str, model: torch.nn.Module,
            files=('model.safetensors', 'pytorch_model.bin', 'config.json')) -> str:
    """Put a timm model's repo files, written by timm's own ``save_for_hf`` (as timm publishes to the
    hub), into ``cache`` the way ``hf_hub_download`` leaves them: ``blobs/<sha256>``,
    ``snapshots/<commit>/<file> -> ../../blobs/<sha256>``, ``refs/main`` holding the commit.
    Checked with huggingface_hub's own cache scanner. Returns the commit."""
    from huggingface_hub import scan_cache_dir
    from timm.models import save_for_hf
    export = cache.parent / f'export-{repo_id.replace("/", "--")}'
    save_for_hf(model, export, safe_serialization='both')
    repo = cache / f'models--{repo_id.replace("/", "--")}'
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / 'snapshots' / commit
    for folder in (snapshot, repo / 'blobs', repo / 'refs'):
        folder.mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    for name in files:
        data = (export / name).read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (repo / 'blobs' / blob).write_bytes(data)
        (snapshot / name).symlink_to(Path('..', '..', 'blobs', blob))
    scanned = scan_cache_dir(cache)
    assert not scanned.warnings, scanned.warnings
    revision, = [r for r in scanned.repos if r.repo_id == repo_id][0].revisions
    assert revision.refs == {'main'} and {f.file_name for f in revision.files} == set(files)
    return commit


@torch.no_grad()
def test_hf_hub_id_loads_from_the_cache_with_parity_to_timm(hf_cache, log_lines):
    source = randomize(timm.create_model('efficientvit_m0')).eval()
    commit = publish(hf_cache, HUB_M0_REPO, source)
    # the reference: timm itself, reading the same repo from the same cache
    ref_model = timm.create_model(HUB_M0, pretrained=True).eval()
    assert torch.equal(ref_model.stages[2].blocks[0].mixer.m.attn.attention_biases,
                       source.stages[2].blocks[0].mixer.m.attn.attention_biases)
    x = torch.randn(1, 3, 224, 224)
    ref = ref_model.forward_intermediates(x, intermediates_only=True)
    for name in (HUB_M0, f'{HUB_M0}@{commit}', HUB_M0_REPO):  # a revision; the bare id of 0.x
        outs = load_through_init_cfg(name, arch='m0', window_size=(7, 7, 4))(x)
        for out, r in zip(outs, ref, strict=True):
            assert out.shape == r.shape and max_rel_err(out, r) < 1e-4, name
    assert any(f"EfficientViT checkpoint {HUB_M0}: converted" in m and "from timm's layout" in m
               for m in log_lines)
    # the detection configs' window (7, 7, 7): the 4x4 stage-3 tables are resized, as for the zoo's
    load_through_init_cfg(HUB_M0, arch='m0')
    assert any('resized 3 attention_biases tables from 4x4 to 7x7' in m for m in log_lines)


def test_hf_hub_falls_back_to_pytorch_model_bin_as_timm_does(hf_cache):
    source = randomize(timm.create_model('efficientvit_m0'))
    publish(hf_cache, HUB_M0_REPO, source, files=('pytorch_model.bin', 'config.json'))
    model = load_through_init_cfg(HUB_M0, arch='m0', window_size=(7, 7, 4))
    assert torch.equal(model.state_dict()['blocks3.3.mixer.m.attn.attention_biases'],
                       source.state_dict()['stages.2.blocks.0.mixer.m.attn.attention_biases'])


def test_hf_hub_scheme_in_mmengine_checkpoint_loader(hf_cache):
    """``load_checkpoint`` / ``load_from`` get the file as stored (timm's layout)."""
    from mmengine.runner import CheckpointLoader, load_checkpoint
    source = randomize(timm.create_model('efficientvit_m0'))
    publish(hf_cache, HUB_M0_REPO, source, files=('model.safetensors',))
    stored = CheckpointLoader.load_checkpoint(HUB_M0)
    assert stored.keys() == source.state_dict().keys()
    fresh = timm.create_model('efficientvit_m0')
    load_checkpoint(fresh, HUB_M0, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def _hub_error(name: str, **kwargs) -> str:
    with pytest.raises(CheckpointError) as err:
        load_through_init_cfg(name, **kwargs)
    message = str(err.value)
    chained = err.value.__cause__ or (err.value.__context__ and not err.value.__suppress_context__)
    assert '\n' not in message and not chained, message
    return message


def test_hf_hub_not_in_the_offline_cache_names_the_cache_and_the_fix(hf_cache):
    publish(hf_cache, HUB_M0_REPO, timm.create_model('efficientvit_m0'), files=('model.safetensors',))
    m4 = hub_checkpoint('m4')
    assert _hub_error(m4, arch='m4') == (
        f'{m4} is not in the Hugging Face cache at {hf_cache} (HF_HUB_OFFLINE is set) and could not be '
        f'downloaded: connect, or run `hf download timm/efficientvit_m4.r224_in1k model.safetensors` '
        'where there is network and point HF_HUB_CACHE at (a copy of) that cache')
    message = _hub_error(f'{HUB_M0}@v2', arch='m0')  # a revision the cache does not hold
    assert f'`hf download {HUB_M0_REPO} model.safetensors --revision v2`' in message


def test_hf_hub_without_huggingface_hub_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)  # what an absent package gives
    assert _hub_error(HUB_M0, arch='m0') == (
        f'{HUB_M0} needs the huggingface_hub package: pip install huggingface_hub')


def test_hf_hub_repo_of_another_model_or_arch_gets_the_layout_diagnosis(hf_cache):
    publish(hf_cache, 'timm/test_resnet.r160_in1k', timm.create_model('test_resnet'),
            files=('model.safetensors',))
    message = _hub_error('hf-hub:timm/test_resnet.r160_in1k', arch='m0')
    # the keys in the file's order (safetensors': by dtype, then name), BatchNorm counters left out
    assert re.match(r'Checkpoint hf-hub:timm/test_resnet\.r160_in1k does not fit the EfficientViT-M0 '
                    r'backbone: it looks like no EfficientViT backbone \(first keys: '
                    r'((conv1|bn1|layer\d)\.[\w.]+(?<!num_batches_tracked)(, |\)\. )){3}\d+ missing keys',
                    message), message
    assert message.endswith('Use an EfficientViT-M0 checkpoint: efficientvit://efficientvit_m0.pth '
                            f'or {HUB_M0}.'), message

    m1 = hub_checkpoint('m1')
    publish(hf_cache, m1[len('hf-hub:'):], timm.create_model('efficientvit_m1'),
            files=('model.safetensors',))
    message = _hub_error(m1, arch='m0')
    assert message.startswith(f'Checkpoint {m1} does not fit the EfficientViT-M0 backbone: it looks '
                              'like EfficientViT-M1.'), message
    assert 'patch_embed.0.c.weight (16, 3, 3, 3) vs (8, 3, 3, 3)' in message


@pytest.mark.slow
def test_hf_hub_environment_in_fresh_interpreters(tmp_path):
    """HF_HUB_CACHE and HF_HUB_OFFLINE as a user sets them: a backbone loads from that cache, and
    tools/train.py with an id the cache lacks stops with the one line."""
    cache = tmp_path / 'hf-cache'
    cache.mkdir()
    source = randomize(timm.create_model('efficientvit_m0'))
    publish(cache, HUB_M0_REPO, source, files=('model.safetensors',))
    env = dict(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'hf-home'))
    code = ('from mmdet_efficientvit.models import EfficientViT\n'
            f'm = EfficientViT("m0", init_cfg=dict(type="Pretrained", checkpoint="{HUB_M0}"))\n'
            'm.init_weights()\n'
            'print(m.state_dict()["patch_embed.0.c.weight"].double().sum().item())\n')
    out = subprocess.run([sys.executable, '-c', code], env=tool_env(**env), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    expected = source.state_dict()['patch_embed.conv1.conv.weight'].double().sum().item()
    assert float(out.stdout.split()[-1]) == pytest.approx(expected, rel=1e-12)

    data = tmp_path / 'data'
    for split in ('train', 'val'):
        write_coco_split(data, split, ('rectangle', 'ellipse', 'triangle', 'star'),
                         num_images=2).rename(data / f'{split}.json')
    empty = tmp_path / 'empty-cache'
    empty.mkdir()
    cfg = tiny_config(tmp_path / 'cfg.py', data,
                      backbone_init_cfg=dict(type='Pretrained', checkpoint=HUB_M0))
    out = run_tool(['train.py', cfg, '--work-dir', tmp_path / 'w'],
                   **dict(env, HF_HUB_CACHE=str(empty)))
    assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-3000:]
    err = out.stderr[out.stderr.index('error: '):].strip()
    assert err == (f'error: {HUB_M0} is not in the Hugging Face cache at {empty} (HF_HUB_OFFLINE is '
                   f'set) and could not be downloaded: connect, or run `hf download {HUB_M0_REPO} '
                   'model.safetensors` where there is network and point HF_HUB_CACHE at (a copy of) '
                   'that cache'), err


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
