"""The CUDA decisions of `make setup` (tools/setup_cuda.py): which torch, CPU or CUDA ops, which nvcc,
which arches, when to refuse and what the refusal says. GPUs, drivers, nvcc and torch are faked:
``nvidia-smi`` and ``nvcc`` are shell scripts on PATH, torch is a dataclass or a fake python that prints
the probe's JSON. One opt-in test (MMDET_EVIT_NVCC_TEST=1) compiles a real CUDA extension with the PyPI
nvcc, which needs no GPU."""
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _data import load_tool

setup_cuda = load_tool('setup_cuda.py')
Refusal = setup_cuda.Refusal

H200 = 'NVIDIA H200, 9.0, 580.95.05'
A100 = 'NVIDIA A100-SXM4-80GB, 8.0, 535.104.05'
NVCC_13_ARCHES = '75 80 86 87 88 89 90 100 110 103 120 121'


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n' + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def fake_smi(bin_dir: Path, gpus=(H200,), cuda='13.0', compute_cap=True, fail=None) -> None:
    """nvidia-smi answering --query-gpu (with or without compute_cap) and its plain header."""
    if fail:
        write_script(bin_dir / 'nvidia-smi', f'echo "{fail}"; exit 9\n')
        return
    rows = '\n'.join(gpus if compute_cap else [f'{g.split(", ")[0]}, {g.split(", ")[2]}' for g in gpus])
    no_cap = '' if compute_cap else 'echo "Field compute_cap is not a valid field to query."; exit 2;'
    write_script(bin_dir / 'nvidia-smi', f'''\
        case "$1" in
          --query-gpu=*compute_cap*) {no_cap} ;;
        esac
        case "$1" in
          --query-gpu=*) printf '%s\\n' "{rows}" ;;
          *) echo "| NVIDIA-SMI 580.95.05   Driver Version: 580.95.05   CUDA Version: {cuda}     |" ;;
        esac
        ''')


def fake_nvcc(home: Path, release: str, arches: str = NVCC_13_ARCHES) -> Path:
    """bin/nvcc of a toolkit at ``home``: --version, --list-gpu-arch and --dryrun's _HERE_."""
    archs = ' '.join(f'compute_{a}' for a in arches.split())
    return write_script(home / 'bin' / 'nvcc', f'''\
        case "$1" in
          --version) echo "Cuda compilation tools, release {release}, V{release}.88" ;;
          --list-gpu-arch) printf '%s\\n' {archs} ;;
          --dryrun) echo "#$ _HERE_={home}/bin" >&2 ;;
        esac
        ''')


def torch_info(tmp_path: Path, **kw):
    fields = dict(python='311', site_packages=str(tmp_path / 'site'), version='2.14.1+cu130',
                  torchvision='0.29.1', cuda='13.0', available=True, capabilities=['9.0'],
                  cuda_toolkit='13.0.3.0')
    fields.update(kw)
    return setup_cuda.Torch(**fields)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """An empty PATH directory (plus the shell's), and no conventional /usr/local/cuda."""
    path = tmp_path / 'bin'
    path.mkdir()
    monkeypatch.setenv('PATH', f'{path}:/usr/bin:/bin')
    monkeypatch.setattr(setup_cuda, 'CONVENTIONAL_NVCC', ())
    return path


class Installs(list):
    """A stand-in for pip: records the requirement and lays out the wheel's nvcc like NVIDIA's."""

    def __init__(self, site: Path, release: str = '13.0'):
        super().__init__()
        self.site, self.release = site, release

    def __call__(self, requirement: str) -> None:
        self.append(requirement)
        home = self.site / 'nvidia' / 'cu13'
        fake_nvcc(home, self.release)
        (home / 'lib').mkdir(parents=True, exist_ok=True)
        (home / 'lib' / 'libcudart.so.13').write_bytes(b'')


def refusal(fn, *args) -> str:
    with pytest.raises(Refusal) as info:
        fn(*args)
    return str(info.value)


# ------------------------------------------------------------------------------------------ torch
def test_torch_requirements_default_spec_index_and_keep():
    default = ['torch==2.14.1', 'torchvision==0.29.1']
    assert setup_cuda.torch_requirements({}, default) == (default, False)
    env = dict(TORCH_SPEC='torch==2.8.0 torchvision==0.23.0',
               TORCH_INDEX_URL='https://download.pytorch.org/whl/cu128')
    assert setup_cuda.torch_requirements(env, default) == (
        ['--index-url', 'https://download.pytorch.org/whl/cu128', 'torch==2.8.0',
         'torchvision==0.23.0'], False)
    assert setup_cuda.torch_requirements(dict(TORCH_KEEP='1'), default) == ([], True)


def test_kept_torch_must_be_importable_and_new_enough(tmp_path):
    missing = torch_info(tmp_path, version=None, error="ModuleNotFoundError: No module named 'torch'")
    msg = refusal(setup_cuda.check_kept_torch, missing, '2.6.0')
    assert 'TORCH_KEEP=1' in msg and "No module named 'torch'" in msg
    assert '--system-site-packages' in msg and '.venv/bin/pip install torch' in msg
    msg = refusal(setup_cuda.check_kept_torch, torch_info(tmp_path, version='2.4.1+cu121'), '2.6.0')
    assert '2.4.1+cu121' in msg and '>= 2.6.0' in msg
    setup_cuda.check_kept_torch(torch_info(tmp_path), '2.6.0')


# ------------------------------------------------------------------------------------------ driver
def test_probe_driver_reads_gpus_capabilities_and_cuda_version(bin_dir):
    assert setup_cuda.probe_driver() is None  # no nvidia-smi: a CPU machine
    fake_smi(bin_dir, gpus=(H200, A100), cuda='13.0')
    driver = setup_cuda.probe_driver()
    assert [(g.name, g.capability) for g in driver.gpus] == [('NVIDIA H200', '9.0'),
                                                            ('NVIDIA A100-SXM4-80GB', '8.0')]
    assert driver.cuda == '13.0' and driver.error is None


def test_probe_driver_without_compute_cap_and_failing(bin_dir):
    fake_smi(bin_dir, gpus=(A100,), cuda='12.2', compute_cap=False)  # drivers before 510
    driver = setup_cuda.probe_driver()
    assert [(g.name, g.capability) for g in driver.gpus] == [('NVIDIA A100-SXM4-80GB', None)]
    assert driver.version == '535.104.05' and driver.cuda == '12.2'
    fake_smi(bin_dir, fail="NVIDIA-SMI has failed: couldn't communicate with the NVIDIA driver.")
    driver = setup_cuda.probe_driver()
    assert driver.gpus == [] and 'communicate with the NVIDIA driver' in driver.error


# ------------------------------------------------------------------------------------------ CPU/CUDA
def test_cpu_machine_plans_the_cpu_build_as_before(tmp_path, bin_dir):
    torch = torch_info(tmp_path, available=False, capabilities=[])
    plan = setup_cuda.plan({}, None, torch, Installs(tmp_path), lambda m: None)
    # the wheel cache key setup_env.sh used before CUDA planning, so cached CPU wheels stay valid
    assert plan.exports() == {'MMCV_FLAVOUR': 'torch2.14.1_cu130-py311-cpu'}


def test_old_driver_refuses_with_both_cuda_versions_and_the_fix(tmp_path, bin_dir):
    fake_smi(bin_dir, gpus=(A100,), cuda='12.2')
    torch = torch_info(tmp_path, available=False, capabilities=[])
    msg = refusal(setup_cuda.plan, {}, setup_cuda.probe_driver(), torch, Installs(tmp_path), print)
    assert 'nvidia-smi shows 1 GPU (NVIDIA A100-SXM4-80GB; driver 535.104.05, CUDA 12.2)' in msg
    assert 'torch 2.14.1+cu130' in msg and 'built for CUDA 13.0' in msg and 'CUDA 12.2 at most' in msg
    assert 'TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 make setup' in msg
    assert 'MMDET_EVIT_CPU_ONLY=1 make setup' in msg


def test_cpu_only_torch_or_broken_driver_on_a_gpu_machine_refuses(tmp_path, bin_dir):
    fake_smi(bin_dir, gpus=(H200,), cuda='13.0')
    driver = setup_cuda.probe_driver()
    cpu_torch = torch_info(tmp_path, version='2.13.0+cpu', cuda=None, available=False,
                           capabilities=[], cuda_toolkit=None)
    msg = refusal(setup_cuda.wants_cuda, {}, driver, cpu_torch)
    assert 'torch 2.13.0+cpu' in msg and 'CPU-only build' in msg and 'TORCH_INDEX_URL=' in msg
    # driver new enough, torch a CUDA build, and still no GPU: the process may not see it
    hidden = torch_info(tmp_path, available=False, capabilities=[])
    msg = refusal(setup_cuda.wants_cuda, {'CUDA_VISIBLE_DEVICES': ''}, driver, hidden)
    assert 'CUDA_VISIBLE_DEVICES=' in msg and 'torch.cuda.init()' in msg
    fake_smi(bin_dir, fail='NVIDIA-SMI has failed because it could not communicate with the driver')
    msg = refusal(setup_cuda.wants_cuda, {}, setup_cuda.probe_driver(), hidden)
    assert 'nvidia-smi is installed but failed' in msg and 'could not communicate' in msg


def test_cpu_build_on_a_gpu_machine_only_when_asked(tmp_path, bin_dir):
    fake_smi(bin_dir)
    driver = setup_cuda.probe_driver()
    hidden = torch_info(tmp_path, available=False, capabilities=[])
    assert setup_cuda.wants_cuda({'MMDET_EVIT_CPU_ONLY': '1'}, driver, hidden) is False
    assert setup_cuda.wants_cuda({}, driver, torch_info(tmp_path)) is True
    assert setup_cuda.wants_cuda({'FORCE_CUDA': '1'}, None, hidden) is True  # e.g. a login node
    msg = refusal(setup_cuda.wants_cuda, {'MMDET_EVIT_CPU_ONLY': '1', 'FORCE_CUDA': '1'}, driver, hidden)
    assert 'contradict' in msg


# ------------------------------------------------------------------------------------------ nvcc
def test_system_nvcc_of_torchs_version_is_used(tmp_path, bin_dir):
    toolkit = tmp_path / 'cuda-13.0'
    nvcc = fake_nvcc(toolkit, '13.0')
    (bin_dir / 'nvcc').symlink_to(nvcc)  # on PATH through a link: CUDA_HOME is the toolkit itself
    installs = Installs(tmp_path / 'site')
    home, source = setup_cuda.choose_nvcc(dict(os.environ), torch_info(tmp_path), installs)
    assert home == str(toolkit) and 'system nvcc' in source and installs == []


def test_mismatched_system_nvcc_gets_the_pypi_one(tmp_path, bin_dir):
    fake_nvcc(tmp_path / 'cuda-12.4', '12.4')
    (bin_dir / 'nvcc').symlink_to(tmp_path / 'cuda-12.4' / 'bin' / 'nvcc')
    torch = torch_info(tmp_path)
    installs = Installs(Path(torch.site_packages))
    home, source = setup_cuda.choose_nvcc(dict(os.environ), torch, installs)
    # pinned to the cuda-toolkit that torch's wheel pulled in, so every nvidia-* wheel agrees
    assert installs == ['cuda-toolkit[nvcc,crt,cccl,cudart]==13.0.3.0']
    assert home == str(Path(torch.site_packages) / 'nvidia' / 'cu13')
    assert 'is CUDA 12.4' in source
    assert os.readlink(Path(home) / 'lib' / 'libcudart.so') == 'libcudart.so.13'  # for -lcudart
    no_kit = torch_info(tmp_path, cuda_toolkit=None)
    assert setup_cuda.pypi_nvcc_requirement(no_kit) == 'cuda-toolkit[nvcc,crt,cccl,cudart]==13.0.*'


def test_users_cuda_home_must_match(tmp_path, bin_dir):
    fake_nvcc(tmp_path / 'cuda-12.1', '12.1')
    env = {'CUDA_HOME': str(tmp_path / 'cuda-12.1')}
    msg = refusal(setup_cuda.choose_nvcc, env, torch_info(tmp_path), Installs(tmp_path))
    assert f'CUDA_HOME={tmp_path}/cuda-12.1 has nvcc 12.1' in msg and 'CUDA 13.0' in msg
    assert 'env -u CUDA_HOME make setup' in msg
    fake_nvcc(tmp_path / 'cuda-13.0', '13.0')
    env = {'CUDA_HOME': str(tmp_path / 'cuda-13.0')}
    assert setup_cuda.choose_nvcc(env, torch_info(tmp_path), Installs(tmp_path))[0] == env['CUDA_HOME']


def test_cuda12_torch_without_matching_nvcc_refuses(tmp_path, bin_dir):
    fake_nvcc(tmp_path / 'cuda-13.0', '13.0')
    (bin_dir / 'nvcc').symlink_to(tmp_path / 'cuda-13.0' / 'bin' / 'nvcc')
    torch = torch_info(tmp_path, version='2.8.0+cu128', cuda='12.8', cuda_toolkit=None)
    installs = Installs(tmp_path)
    msg = refusal(setup_cuda.choose_nvcc, dict(os.environ), torch, installs)
    assert installs == []  # PyPI's CUDA 12 nvcc wheels hold ptxas only: nothing to install
    assert 'no nvcc 12.8 was found' in msg and 'is CUDA 13.0' in msg
    assert 'CUDA_HOME=/path/to/cuda-12.8 make setup' in msg and 'cuda-toolkit=12.8' in msg


# ------------------------------------------------------------------------------------------ arches
SUPPORTED = [f'{int(a) // 10}.{int(a) % 10}' for a in NVCC_13_ARCHES.split()]


def test_arch_list_defaults_to_the_visible_gpus():
    assert setup_cuda.choose_arch_list({}, ['9.0', '8.0', '9.0'], SUPPORTED, 'nvcc 13.0') == '8.0;9.0'
    msg = refusal(setup_cuda.choose_arch_list, {}, [], SUPPORTED, 'nvcc 13.0')
    assert 'no GPU is visible' in msg and 'TORCH_CUDA_ARCH_LIST=' in msg
    msg = refusal(setup_cuda.choose_arch_list, {}, ['7.0'], SUPPORTED, 'nvcc 13.0')  # V100, nvcc 13
    assert 'compute capability 7.0' in msg and 'nvcc 13.0 builds 7.5, 8.0' in msg


@pytest.mark.parametrize('value, expected', [
    ('9.0', '9.0'), ('8.0,9.0', '8.0;9.0'), ('8.0 9.0+PTX', '8.0;9.0+PTX'), ('9.0a', '9.0a'),
    ('8.0+PTX', '8.0+PTX'),  # PTX of an older arch runs on the 9.0 GPU (JIT-compiled)
])
def test_valid_arch_lists(value, expected):
    assert setup_cuda.choose_arch_list({'TORCH_CUDA_ARCH_LIST': value}, ['9.0'], SUPPORTED,
                                       'nvcc 13.0') == expected


@pytest.mark.parametrize('value, gpus, needle', [
    ('sm_90', ['9.0'], "'sm_90' is not a compute capability"),
    ('7.0', ['9.0'], 'asks for 7.0, which nvcc 13.0 cannot build (nvcc 13.0 builds 7.5'),
    ('8.0', ['9.0'], "no code for the visible GPUs' compute capability 9.0"),
    ('8.6', ['8.0'], "compute capability 8.0"),  # 8.6 machine code does not run on 8.0
    ('9.0a', ['10.0'], "compute capability 10.0"),  # arch-specific code runs on that arch alone
    (';', ['9.0'], 'is invalid: it is empty'),
])
def test_bad_arch_lists_name_value_need_and_fix(value, gpus, needle):
    msg = refusal(setup_cuda.choose_arch_list, {'TORCH_CUDA_ARCH_LIST': value}, gpus, SUPPORTED,
                  'nvcc 13.0')
    assert needle in msg and f'TORCH_CUDA_ARCH_LIST="{value}"' in msg and 'make setup' in msg


def test_wheel_flavour_keys_cuda_version_and_arches(tmp_path):
    torch = torch_info(tmp_path)
    assert setup_cuda.wheel_flavour(torch) == 'torch2.14.1_cu130-py311-cpu'
    assert setup_cuda.wheel_flavour(torch, '13.0', '8.0;9.0+PTX') == \
        'torch2.14.1_cu130-py311-cuda13.0-sm8.0_9.0ptx'


# ------------------------------------------------------------------------------------------ CLI
def fake_python(tmp_path: Path, torch: dict) -> Path:
    """A 'python' whose torch probe prints ``torch`` and whose pip lays out NVIDIA's nvcc wheel."""
    (tmp_path / 'torch.json').write_text(json.dumps(torch))
    home = Path(torch['site_packages']) / 'nvidia' / 'cu13'
    return write_script(tmp_path / 'venv' / 'bin' / 'python', f'''\
        if [ "$1" = "-c" ]; then cat {tmp_path}/torch.json; exit 0; fi
        if [ "$1 $2 $3" = "-m pip install" ]; then
          echo "$@" >> {tmp_path}/pip.log
          mkdir -p {home}/bin {home}/lib && : > {home}/lib/libcudart.so.13
          cp {tmp_path}/pypi-nvcc {home}/bin/nvcc
          exit 0
        fi
        exit 1
        ''')


def run_plan(tmp_path, capsys, monkeypatch, env, torch):
    fake_nvcc(tmp_path / 'pypi', '13.0')
    (tmp_path / 'pypi' / 'bin' / 'nvcc').rename(tmp_path / 'pypi-nvcc')
    python = fake_python(tmp_path, torch)
    for key in ('TORCH_CUDA_ARCH_LIST', 'CUDA_HOME', 'CUDA_PATH', 'FORCE_CUDA', 'MMDET_EVIT_CPU_ONLY'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rc = setup_cuda.main(['plan', '--python', str(python)])
    out, err = capsys.readouterr()
    return rc, out, err


def probe_json(tmp_path, **kw):
    info = dict(python='311', site_packages=str(tmp_path / 'site'), version='2.14.1+cu130',
                torchvision='0.29.1', cuda='13.0', available=True, capabilities=['9.0'],
                cuda_toolkit='13.0.3.0')
    info.update(kw)
    return info


def test_cli_plan_on_a_gpu_machine_installs_nvcc_and_exports(tmp_path, bin_dir, capsys, monkeypatch):
    fake_smi(bin_dir, gpus=(H200,), cuda='13.0')
    rc, out, err = run_plan(tmp_path, capsys, monkeypatch, {}, probe_json(tmp_path))
    assert rc == 0, err
    home = tmp_path / 'site' / 'nvidia' / 'cu13'
    assert out.splitlines() == [
        'export MMCV_FLAVOUR=torch2.14.1_cu130-py311-cuda13.0-sm9.0', 'export FORCE_CUDA=1',
        f'export CUDA_HOME={home}', 'export TORCH_CUDA_ARCH_LIST=9.0']
    assert 'cuda-toolkit[nvcc,crt,cccl,cudart]==13.0.3.0' in (tmp_path / 'pip.log').read_text()
    assert 'nvidia-smi: 1 GPU (NVIDIA H200' in err


def test_cli_plan_refusal_is_one_message_and_exit_2(tmp_path, bin_dir, capsys, monkeypatch):
    fake_smi(bin_dir, gpus=(A100,), cuda='12.2')
    rc, out, err = run_plan(tmp_path, capsys, monkeypatch, {},
                            probe_json(tmp_path, available=False, capabilities=[]))
    assert rc == 2 and out == ''
    assert err.count('\n') == 1 and err.startswith('[setup] nvidia-smi shows 1 GPU')
    assert not (tmp_path / 'pip.log').exists()  # refused before installing anything


def test_cli_plan_bad_arch_list_stops_before_the_build(tmp_path, bin_dir, capsys, monkeypatch):
    fake_smi(bin_dir, gpus=(H200,), cuda='13.0')
    rc, out, err = run_plan(tmp_path, capsys, monkeypatch, {'TORCH_CUDA_ARCH_LIST': '8.0'},
                            probe_json(tmp_path))
    assert rc == 2 and out == ''
    assert 'TORCH_CUDA_ARCH_LIST="8.0" has no code for' in err and '9.0' in err


def test_cli_torch_args(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('TORCH_KEEP', raising=False)
    monkeypatch.setenv('TORCH_INDEX_URL', 'https://download.pytorch.org/whl/cu126')
    monkeypatch.delenv('TORCH_SPEC', raising=False)
    assert setup_cuda.main(['torch-args', '--python', sys.executable, 'torch==2.14.1',
                            'torchvision==0.29.1']) == 0
    assert capsys.readouterr().out.split() == [
        '--index-url', 'https://download.pytorch.org/whl/cu126', 'torch==2.14.1', 'torchvision==0.29.1']


# ------------------------------------------------------------------------------------------ real nvcc
CU_SOURCE = r'''
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
__global__ void add_one(float* x, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.f;
}
void add_one_(torch::Tensor x) {
  TORCH_CHECK(x.is_cuda() && x.scalar_type() == torch::kFloat, "a float CUDA tensor");
  int64_t n = x.numel();
  add_one<<<(n + 255) / 256, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(x.data_ptr<float>(), n);
}
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("add_one_", &add_one_); }
'''


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('MMDET_EVIT_NVCC_TEST') != '1',
                    reason='opt-in: MMDET_EVIT_NVCC_TEST=1 (needs the PyPI nvcc in .venv; see README)')
def test_pypi_nvcc_compiles_a_torch_cuda_extension(tmp_path):
    """nvcc from NVIDIA's wheels, as the setup installs it, builds a one-kernel torch extension that
    includes torch's CUDA headers and links libcudart, for sm_90, and the module imports, all without
    a GPU: what the mmcv build needs from the toolchain (the kernel itself runs only on a GPU)."""
    import torch
    torch_probe = setup_cuda.probe_torch(sys.executable)
    home = setup_cuda.pypi_cuda_home(torch_probe.site_packages, torch.version.cuda)
    nvcc = os.path.join(home, 'bin', 'nvcc')
    if setup_cuda.nvcc_release(nvcc) != '.'.join(torch.version.cuda.split('.')[:2]):
        pytest.fail(f'no PyPI nvcc {torch.version.cuda} at {nvcc}: install it with '
                    f'`{sys.executable} tools/setup_cuda.py install-nvcc --python {sys.executable}`')
    (tmp_path / 'add_one.cu').write_text(CU_SOURCE)
    script = (f'import torch.utils.cpp_extension as e, sys; '
              f'm = e.load("add_one_ext", [{str(tmp_path / "add_one.cu")!r}], '
              f'build_directory={str(tmp_path)!r}, verbose=True); '
              'print("LOADED", m.add_one_.__doc__ is not None)')
    env = dict(os.environ, CUDA_HOME=home, TORCH_CUDA_ARCH_LIST='9.0', MAX_JOBS='2',
               PATH='/usr/bin:/bin')  # no system nvcc can stand in
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                          timeout=900)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'LOADED True' in proc.stdout
    assert f'{home}/bin/nvcc' in log and 'arch=compute_90,code=sm_90' in log  # the PyPI nvcc, sm_90
    assert (tmp_path / 'add_one_ext.so').exists()
    print(f'PyPI nvcc built the extension in {wall:.1f} s')
