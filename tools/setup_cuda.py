#!/usr/bin/env python3
"""The CUDA decisions of `make setup` (``tools/setup_env.sh``): which torch, CPU or CUDA ops for mmcv,
which nvcc, which GPU architectures, and when to stop before the long mmcv build.

Standard library only: it runs before the stack exists and asks the venv's python about torch in a
subprocess. ``setup_env.sh`` calls two commands:

* ``torch-args --python PY REQ...``: the pip arguments that install torch (nothing: keep the one
  installed);
* ``plan --python PY``: ``export`` lines for the mmcv build (``MMCV_FLAVOUR``, the wheel cache key; on
  CUDA also ``FORCE_CUDA``, ``CUDA_HOME``, ``TORCH_CUDA_ARCH_LIST``), or one message and exit status 2.
  Installs the PyPI nvcc into the venv when no nvcc on the machine matches torch's CUDA.

``install-nvcc --python PY`` installs that PyPI nvcc alone and prints its ``CUDA_HOME``.

Environment (all optional):
  TORCH_KEEP=1           keep the torch + torchvision that .venv's python already imports
  TORCH_SPEC             torch requirements instead of the tested pins,
                         e.g. 'torch==2.8.0 torchvision==0.23.0'
  TORCH_INDEX_URL        pip --index-url for torch, e.g. https://download.pytorch.org/whl/cu128
  MMDET_EVIT_CPU_ONLY=1  build mmcv's ops for the CPU only, even where nvidia-smi shows a GPU
  FORCE_CUDA=1           build mmcv's CUDA ops where no GPU is usable (e.g. a login node); needs
                         TORCH_CUDA_ARCH_LIST
  TORCH_CUDA_ARCH_LIST   compute capabilities to build for, e.g. '8.0;9.0' (default: the visible GPUs')
  CUDA_HOME              the CUDA toolkit to build with; its nvcc must match torch.version.cuda
"""
import argparse
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
# pip extras of NVIDIA's cuda-toolkit meta-package that give nvcc (with nvvm and the crt headers), the
# CUDA runtime headers/library and CCCL (thrust, cub, libcu++); torch's CUDA 13 wheels already pull
# cuda-toolkit with other extras. CUDA 12's nvidia-cuda-nvcc-cu12 wheels hold ptxas but no nvcc.
NVCC_EXTRAS = 'nvcc,crt,cccl,cudart'
PYPI_NVCC_MIN_MAJOR = 13
CONVENTIONAL_NVCC = ('/usr/local/cuda/bin/nvcc',)  # where toolkits install when nvcc is not on PATH
PYTORCH_INDEX = 'https://download.pytorch.org/whl'
TORCH_PROBE = r'''
import importlib.metadata as md, json, sys, sysconfig
info = dict(python=f"{sys.version_info[0]}{sys.version_info[1]}",
            site_packages=sysconfig.get_paths()["purelib"])
try:
    import torch, torchvision
except Exception as e:
    info["error"] = f"{type(e).__name__}: {e}"
else:
    info.update(version=torch.__version__, torchvision=torchvision.__version__, cuda=torch.version.cuda)
    try:
        info["available"] = torch.cuda.is_available()
        count = torch.cuda.device_count() if info["available"] else 0
        info["capabilities"] = ["%d.%d" % torch.cuda.get_device_capability(i) for i in range(count)]
    except Exception as e:
        info.update(available=False, capabilities=[], cuda_error=f"{type(e).__name__}: {e}")
    try:
        info["cuda_toolkit"] = md.version("cuda-toolkit")
    except md.PackageNotFoundError:
        pass
print(json.dumps(info))
'''


class Refusal(Exception):
    """A set-up that cannot work as asked; the message says what was found, what is needed, the fix."""


@dataclass
class Gpu:
    name: str
    capability: Optional[str]  # '9.0'; None where the driver's nvidia-smi cannot report it


@dataclass
class Driver:
    """What nvidia-smi reports."""
    gpus: List[Gpu] = field(default_factory=list)
    version: str = '?'
    cuda: Optional[str] = None  # the highest CUDA version the driver supports ('CUDA Version')
    error: Optional[str] = None  # nvidia-smi failed: its message

    def describe(self) -> str:
        names = ', '.join(sorted({g.name for g in self.gpus}))
        cuda = f', CUDA {self.cuda}' if self.cuda else ''
        return (f'{len(self.gpus)} GPU{"s" if len(self.gpus) != 1 else ""} ({names}; driver '
                f'{self.version}{cuda})')


@dataclass
class Torch:
    """What the venv's python says about torch (``TORCH_PROBE``)."""
    python: str
    site_packages: str
    version: Optional[str] = None  # None: torch is not importable (``error`` says why)
    torchvision: Optional[str] = None
    cuda: Optional[str] = None  # torch.version.cuda; None for a CPU-only build
    available: bool = False
    capabilities: List[str] = field(default_factory=list)
    cuda_toolkit: Optional[str] = None
    error: Optional[str] = None
    cuda_error: Optional[str] = None


@dataclass
class Plan:
    """How to build mmcv."""
    cuda: bool
    flavour: str  # the wheel cache key
    cuda_home: Optional[str] = None
    arch_list: Optional[str] = None
    nvcc_source: str = ''

    def exports(self) -> Dict[str, str]:
        out = {'MMCV_FLAVOUR': self.flavour}
        if self.cuda:
            out.update(FORCE_CUDA='1', CUDA_HOME=self.cuda_home, TORCH_CUDA_ARCH_LIST=self.arch_list)
        return out


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, '').strip().lower() in ('1', 'true', 'yes', 'on')


def _version_tuple(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r'\d+', version)[:2])


# ------------------------------------------------------------------------------------------ probes
def probe_driver(run: Callable = subprocess.run) -> Optional[Driver]:
    """nvidia-smi's GPUs (name, compute capability), driver and CUDA version; None without it."""
    smi = shutil.which('nvidia-smi')
    if smi is None:
        return None
    driver = Driver()
    fields = 'name,compute_cap,driver_version'
    query = run([smi, f'--query-gpu={fields}', '--format=csv,noheader'], capture_output=True, text=True)
    if query.returncode != 0:  # drivers before 510 do not know compute_cap
        fields = 'name,driver_version'
        query = run([smi, f'--query-gpu={fields}', '--format=csv,noheader'], capture_output=True,
                    text=True)
    if query.returncode != 0:
        lines = (query.stdout + query.stderr).strip().splitlines()
        driver.error = lines[0] if lines else f'exit status {query.returncode}'
        return driver
    for line in query.stdout.strip().splitlines():
        values = dict(zip(fields.split(','), (v.strip() for v in line.split(','))))
        cap = values.get('compute_cap')
        driver.gpus.append(Gpu(values['name'], cap if cap and re.fullmatch(r'\d+\.\d+', cap) else None))
        driver.version = values['driver_version']
    header = run([smi], capture_output=True, text=True)
    match = re.search(r'CUDA Version:\s*(\d+\.\d+)', header.stdout)
    driver.cuda = match.group(1) if match else None
    return driver


def probe_torch(python: str) -> Torch:
    """Ask the venv's python about torch (version, CUDA build, visible GPUs, cuda-toolkit wheel)."""
    proc = subprocess.run([python, '-c', TORCH_PROBE], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Refusal(f'{python} could not run the torch probe: {proc.stderr.strip()[-500:]}')
    return Torch(**json.loads(proc.stdout.strip().splitlines()[-1]))


def nvcc_release(nvcc: str) -> Optional[str]:
    """'13.0' from ``nvcc --version``; None if it does not run."""
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    except OSError:
        return None
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None


def nvcc_home(nvcc: str) -> str:
    """The toolkit an nvcc belongs to (its ``_HERE_/..``): right also for wrapper scripts and links."""
    proc = subprocess.run([nvcc, '--dryrun', '-c', 'probe.cu'], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    match = re.search(r'^#\$ _HERE_=(.+)$', out, re.M)
    here = match.group(1).strip() if match else os.path.dirname(os.path.realpath(nvcc))
    return os.path.dirname(os.path.normpath(here))


def nvcc_arches(nvcc: str) -> List[str]:
    """The virtual architectures nvcc can build (``--list-gpu-arch``: compute_90a -> '9.0a')."""
    out = subprocess.run([nvcc, '--list-gpu-arch'], capture_output=True, text=True).stdout
    return [f'{int(m[1]) // 10}.{int(m[1]) % 10}{m[2]}'
            for m in re.finditer(r'compute_(\d+)([a-z]?)', out)]


# ------------------------------------------------------------------------------------------ torch
def torch_requirements(env: Mapping[str, str], default: Sequence[str]) -> Tuple[List[str], bool]:
    """(pip arguments that install torch, whether to keep the installed one instead)."""
    if _flag(env, 'TORCH_KEEP'):
        return [], True
    args = shlex.split(env['TORCH_SPEC']) if env.get('TORCH_SPEC', '').strip() else list(default)
    if env.get('TORCH_INDEX_URL', '').strip():
        args = ['--index-url', env['TORCH_INDEX_URL'].strip()] + args
    return args, False


def check_kept_torch(torch: Torch, floor: str) -> None:
    """TORCH_KEEP=1: the venv's python must import torch (>= ``floor``) and torchvision already."""
    if torch.version is None:
        raise Refusal(
            f'TORCH_KEEP=1, but .venv\'s python cannot import torch and torchvision ({torch.error}). '
            'Install the build you want into .venv first, e.g. `.venv/bin/pip install torch '
            f'torchvision --index-url {PYTORCH_INDEX}/cu128`, or create .venv with '
            '`python3 -m venv --system-site-packages .venv` to use a torch installed outside it; '
            'then rerun `TORCH_KEEP=1 make setup`.')
    if _version_tuple(torch.version) < _version_tuple(floor):
        raise Refusal(f'TORCH_KEEP=1 keeps torch {torch.version}, but mmdet-efficientvit needs torch '
                      f'>= {floor}. Install a newer torch into .venv or drop TORCH_KEEP.')


# ------------------------------------------------------------------------------------------ CPU/CUDA
def suggested_torch_index(driver_cuda: Optional[str]) -> str:
    """A PyTorch wheel index whose CUDA major matches the driver (CUDA minor-version compatibility)."""
    major = _version_tuple(driver_cuda)[0] if driver_cuda else 12
    return f'{PYTORCH_INDEX}/cu{ {11: "118", 12: "128"}.get(major, f"{major}0") }'


def wants_cuda(env: Mapping[str, str], driver: Optional[Driver], torch: Torch) -> bool:
    """Build mmcv's CUDA ops? Refuse a CPU-only build where nvidia-smi shows an unusable GPU."""
    cpu_only, force = _flag(env, 'MMDET_EVIT_CPU_ONLY'), _flag(env, 'FORCE_CUDA')
    if cpu_only and force:
        raise Refusal('MMDET_EVIT_CPU_ONLY=1 and FORCE_CUDA=1 contradict each other: unset one.')
    if cpu_only:
        return False
    if force or (driver is not None and torch.available):
        if torch.cuda is None:
            raise Refusal(f'FORCE_CUDA=1, but torch {torch.version} is a CPU-only build. Install a '
                          'CUDA build (default: unset TORCH_SPEC/TORCH_INDEX_URL/TORCH_KEEP) and rerun.')
        return True
    if driver is None:
        return False  # no NVIDIA driver tools: a CPU machine
    raise Refusal(unusable_gpu_message(driver, torch, env))


def unusable_gpu_message(driver: Driver, torch: Torch, env: Mapping[str, str]) -> str:
    """nvidia-smi exists but torch sees no GPU: what was found, why, and the fix."""
    opt_out = ('To build for the CPU only on this machine anyway: `MMDET_EVIT_CPU_ONLY=1 make setup`; '
               'to build CUDA ops without a usable GPU: '
               '`FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 make setup`.')
    build = f'torch {torch.version}'
    if driver.error is not None:
        return (f'nvidia-smi is installed but failed ("{driver.error}"), so no GPU is usable; torch '
                f'{torch.version} (CUDA {torch.cuda or "none: CPU-only build"}) sees none. Fix the NVIDIA '
                f'driver (`nvidia-smi` must list the GPUs), then rerun `make setup`. {opt_out}')
    found = f'nvidia-smi shows {driver.describe()}, but {build} cannot use it'
    if torch.cuda is None:
        return (f'{found}: it is a CPU-only build. Fix: install a CUDA build, e.g. '
                f'`TORCH_INDEX_URL={suggested_torch_index(driver.cuda)} make setup` (or unset '
                f'TORCH_SPEC/TORCH_INDEX_URL/TORCH_KEEP for the default CUDA 13.0 build). {opt_out}')
    if driver.cuda and _version_tuple(driver.cuda) < _version_tuple(torch.cuda):
        return (f'{found}: it is built for CUDA {torch.cuda} and the driver supports CUDA '
                f'{driver.cuda} at most. Fix: update the NVIDIA driver to one for CUDA >= '
                f'{torch.cuda}, or install a torch built for CUDA {_version_tuple(driver.cuda)[0]}: '
                f'`TORCH_INDEX_URL={suggested_torch_index(driver.cuda)} make setup` (add '
                'TORCH_SPEC="torch==X torchvision==Y" for a release that index has, or TORCH_KEEP=1 to '
                f'keep a torch you installed into .venv). {opt_out}')
    reason = torch.cuda_error or 'torch.cuda.is_available() is False'
    return (f'{found} ({reason}; torch is built for CUDA {torch.cuda}, the driver supports CUDA '
            f'{driver.cuda or "?"}). Check that this process may use the GPU (CUDA_VISIBLE_DEVICES='
            f'{env.get("CUDA_VISIBLE_DEVICES", "<unset>")}, container GPU access; '
            '`.venv/bin/python -c "import torch; torch.cuda.init()"` shows the error), then rerun. '
            f'{opt_out}')


# ------------------------------------------------------------------------------------------ nvcc
def pypi_nvcc_requirement(torch: Torch) -> str:
    """The pip requirement for an nvcc of torch's CUDA version (CUDA >= 13 only)."""
    major_minor = '.'.join(map(str, _version_tuple(torch.cuda)))
    kit = torch.cuda_toolkit
    pin = kit if kit and '.'.join(map(str, _version_tuple(kit))) == major_minor else f'{major_minor}.*'
    return f'cuda-toolkit[{NVCC_EXTRAS}]=={pin}'


def pypi_cuda_home(site_packages: str, cuda: str) -> str:
    """Where the PyPI CUDA wheels of major ``cuda`` put their toolkit: ``site-packages/nvidia/cu13``."""
    return str(Path(site_packages) / 'nvidia' / f'cu{_version_tuple(cuda)[0]}')


def link_unversioned_libs(cuda_home: str) -> None:
    """The wheels ship ``libcudart.so.13`` only; extensions link ``-lcudart``, which needs ``.so``."""
    lib = Path(cuda_home) / 'lib'
    for versioned in lib.glob('libcudart.so.*'):
        plain = lib / 'libcudart.so'
        if not plain.exists():
            plain.symlink_to(versioned.name)


def system_nvcc_candidates(env: Mapping[str, str]) -> List[str]:
    """nvcc on PATH, then the conventional /usr/local/cuda (each once, resolved)."""
    found = []
    for path in (shutil.which('nvcc', path=env.get('PATH')), *CONVENTIONAL_NVCC):
        if path and os.path.exists(path) and os.path.realpath(path) not in map(os.path.realpath, found):
            found.append(path)
    return found


def choose_nvcc(env: Mapping[str, str], torch: Torch,
                install: Callable[[str], None]) -> Tuple[str, str]:
    """(CUDA_HOME, where it came from) for an nvcc whose release equals torch.version.cuda.

    A user's CUDA_HOME must match; else the first matching system nvcc; else, for CUDA >= 13, NVIDIA's
    PyPI wheels installed into the venv (``install(requirement)``); else a refusal naming the fix.
    """
    want = '.'.join(map(str, _version_tuple(torch.cuda)))
    user_home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if user_home:
        nvcc = os.path.join(user_home, 'bin', 'nvcc')
        found = nvcc_release(nvcc) if os.path.exists(nvcc) else None
        if found != want:
            raise Refusal(
                f'CUDA_HOME={user_home} has {f"nvcc {found}" if found else "no runnable bin/nvcc"}, '
                f'but '
                f'torch {torch.version} is built for CUDA {want} and mmcv must be compiled with the '
                f'same version. Fix: point CUDA_HOME at a CUDA {want} toolkit, or unset it '
                '(`env -u CUDA_HOME make setup`) to let the setup find or install a matching nvcc.')
        return user_home, f'CUDA_HOME (nvcc {found})'
    seen = []
    for nvcc in system_nvcc_candidates(env):
        found = nvcc_release(nvcc)
        seen.append(f'{nvcc} is CUDA {found or "?"}')
        if found == want:
            return nvcc_home(nvcc), f'system nvcc {nvcc} ({found})'
    if _version_tuple(want)[0] < PYPI_NVCC_MIN_MAJOR:
        raise Refusal(
            f'torch {torch.version} is built for CUDA {want}, and no nvcc {want} was found '
            f'({"; ".join(seen) or "no nvcc on PATH or in /usr/local/cuda"}). PyPI has no nvcc for '
            f'CUDA {_version_tuple(want)[0]} (its nvidia-cuda-nvcc-cu{_version_tuple(want)[0]} wheels '
            f'hold ptxas only). Fix: install the CUDA {want} toolkit (e.g. `module load cuda/{want}` '
            f'on a cluster, or `conda install -c nvidia cuda-toolkit={want}`) and rerun with '
            f'`CUDA_HOME=/path/to/cuda-{want} make setup`.')
    home = install_pypi_nvcc(torch, install)
    return home, f'PyPI {pypi_nvcc_requirement(torch)} in .venv ({"; ".join(seen) or "no system nvcc"})'


def install_pypi_nvcc(torch: Torch, install: Callable[[str], None]) -> str:
    """Install NVIDIA's nvcc wheels of torch's CUDA version into the venv; return their CUDA_HOME."""
    want = '.'.join(map(str, _version_tuple(torch.cuda)))
    requirement = pypi_nvcc_requirement(torch)
    install(requirement)
    home = pypi_cuda_home(torch.site_packages, want)
    found = nvcc_release(os.path.join(home, 'bin', 'nvcc'))
    if found != want:
        raise Refusal(f'installed {requirement} into .venv, but {home}/bin/nvcc reports CUDA '
                      f'{found or "nothing"}, not {want}. Install a CUDA {want} toolkit and rerun with '
                      f'`CUDA_HOME=/path/to/cuda-{want} make setup`.')
    link_unversioned_libs(home)
    return home


# ------------------------------------------------------------------------------------------ arches
ARCH_RE = re.compile(r'(\d+)\.(\d)([af]?)(\+PTX)?')


def parse_arch_list(value: str) -> List[Tuple[int, int, str, bool]]:
    """'8.0;9.0a;10.0+PTX' -> [(8, 0, '', False), (9, 0, 'a', False), (10, 0, '', True)]; ValueError."""
    tokens = [t for t in re.split(r'[;,\s]+', value.strip()) if t]
    if not tokens:
        raise ValueError('it is empty')
    parsed = []
    for token in tokens:
        match = ARCH_RE.fullmatch(token)
        if match is None:
            raise ValueError(f'{token!r} is not a compute capability like 8.6, 9.0a or 9.0+PTX')
        parsed.append((int(match[1]), int(match[2]), match[3], bool(match[4])))
    return parsed


def covers(arches: Sequence[Tuple[int, int, str, bool]], capability: str) -> bool:
    """Whether code built for ``arches`` runs on a GPU of ``capability``: machine code of the same
    major and a lower or equal minor ('a' targets: that exact GPU only), or PTX of any lower one."""
    cap = _version_tuple(capability)
    for major, minor, suffix, ptx in arches:
        if (major, minor) == cap or (ptx and (major, minor) <= cap):
            return True
        if suffix != 'a' and major == cap[0] and minor <= cap[1]:
            return True
    return False


def choose_arch_list(env: Mapping[str, str], capabilities: Sequence[str], supported: Sequence[str],
                     nvcc: str) -> str:
    """TORCH_CUDA_ARCH_LIST: the user's (validated) or the visible GPUs' compute capabilities."""
    user = env.get('TORCH_CUDA_ARCH_LIST', '').strip()
    gpus = sorted(set(capabilities), key=_version_tuple)
    fix = (f'Set it to the compute capabilities of the GPUs that will run the code, e.g. '
           f'`TORCH_CUDA_ARCH_LIST="{";".join(gpus) or "8.0;9.0"}" make setup`.')
    supported_text = f'{nvcc} builds {", ".join(supported)}'
    if not user:
        if not gpus:
            raise Refusal(f'no GPU is visible, so TORCH_CUDA_ARCH_LIST cannot default to the GPUs\' '
                          f'compute capabilities. {fix}')
        unsupported = [c for c in gpus if supported and c not in supported]
        if unsupported:
            raise Refusal(f'the visible GPUs have compute capability {", ".join(unsupported)}, which '
                          f'{nvcc} cannot build for ({supported_text}). Fix: use a torch built for an '
                          f'older CUDA, e.g. `TORCH_INDEX_URL={PYTORCH_INDEX}/cu128 make setup`.')
        return ';'.join(gpus)
    try:
        arches = parse_arch_list(user)
    except ValueError as err:
        raise Refusal(f'TORCH_CUDA_ARCH_LIST="{user}" is invalid: {err}. {fix}') from None
    buildable = {s.rstrip('af') for s in supported}
    bad = [f'{a[0]}.{a[1]}{a[2]}' for a in arches if buildable and f'{a[0]}.{a[1]}' not in buildable]
    if bad:
        raise Refusal(f'TORCH_CUDA_ARCH_LIST="{user}" asks for {", ".join(bad)}, which {nvcc} cannot '
                      f'build ({supported_text}). {fix}')
    missed = [c for c in gpus if not covers(arches, c)]
    if missed:
        raise Refusal(f'TORCH_CUDA_ARCH_LIST="{user}" has no code for the visible GPUs\' compute '
                      f'capability {", ".join(missed)}: the ops would fail there with "no kernel image '
                      f'is available". {fix}')
    return ';'.join(re.split(r'[;,\s]+', user))


def wheel_flavour(torch: Torch, cuda: Optional[str] = None, arch_list: Optional[str] = None) -> str:
    """The mmcv wheel cache key: torch build, Python, and for CUDA the version and arches."""
    base = f'torch{torch.version.replace("+", "_")}-py{torch.python}'
    if cuda is None:
        return f'{base}-cpu'
    arches = '_'.join(t.replace('+PTX', 'ptx') for t in re.split(r'[;,\s]+', arch_list) if t)
    return f'{base}-cuda{cuda}-sm{arches}'


# ------------------------------------------------------------------------------------------ plan
def plan(env: Mapping[str, str], driver: Optional[Driver], torch: Torch,
         install: Callable[[str], None], log: Callable[[str], None]) -> Plan:
    """Everything the mmcv build needs, decided before it starts (or a Refusal)."""
    if torch.version is None:
        raise Refusal(f'.venv\'s python cannot import torch ({torch.error}); rerun `make setup`.')
    if not wants_cuda(env, driver, torch):
        log('MMDET_EVIT_CPU_ONLY=1: building mmcv\'s CPU ops' if _flag(env, 'MMDET_EVIT_CPU_ONLY') else
            'no nvidia-smi: building mmcv\'s CPU ops (FORCE_CUDA=1 with TORCH_CUDA_ARCH_LIST builds '
            'CUDA ops)')
        return Plan(cuda=False, flavour=wheel_flavour(torch))
    cuda = '.'.join(map(str, _version_tuple(torch.cuda)))
    if driver is not None and driver.gpus:
        log(f'nvidia-smi: {driver.describe()}; torch {torch.version} (CUDA {cuda}) sees '
            f'{len(torch.capabilities)} GPU(s)')
    home, source = choose_nvcc(env, torch, install)
    log(f'nvcc: {source}; CUDA_HOME={home}')
    capabilities = [g.capability for g in (driver.gpus if driver else []) if g.capability]
    capabilities = capabilities or list(torch.capabilities)
    nvcc = os.path.join(home, 'bin', 'nvcc')
    arch_list = choose_arch_list(env, capabilities, nvcc_arches(nvcc), f'nvcc {cuda}')
    log(f'TORCH_CUDA_ARCH_LIST={arch_list}')
    return Plan(cuda=True, flavour=wheel_flavour(torch, cuda, arch_list), cuda_home=home,
                arch_list=arch_list, nvcc_source=source)


def pip_installer(python: str, log: Callable[[str], None]) -> Callable[[str], None]:
    def install(requirement: str) -> None:
        log(f'installing {requirement} from PyPI into the venv (nvcc for torch\'s CUDA version)')
        proc = subprocess.run([python, '-m', 'pip', 'install', '-q', requirement])
        if proc.returncode != 0:
            raise Refusal(f'`{python} -m pip install "{requirement}"` failed (output above). Install a '
                          'CUDA toolkit of torch\'s version yourself and rerun with '
                          '`CUDA_HOME=/path/to/cuda make setup`.')
    return install


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    torch_cmd = sub.add_parser('torch-args', help='pip arguments that install torch (empty: keep)')
    torch_cmd.add_argument('--python', required=True)
    torch_cmd.add_argument('default', nargs='+', help='the tested torch requirements')
    for name in ('plan', 'install-nvcc'):
        sub.add_parser(name).add_argument('--python', required=True)
    args = parser.parse_args(argv)
    env = os.environ if env is None else env

    def log(msg: str) -> None:
        print(f'[setup] {msg}', file=sys.stderr, flush=True)

    try:
        if args.command == 'torch-args':
            requirements, keep = torch_requirements(env, args.default)
            if keep:
                _, floor, _ = runpy.run_path(str(REPO / 'mmdet_efficientvit' / 'version.py'))['TORCH']
                check_kept_torch(probe_torch(args.python), floor)
                log('TORCH_KEEP=1: keeping the installed torch')
            print('\n'.join(requirements))
        elif args.command == 'install-nvcc':
            torch = probe_torch(args.python)
            if torch.cuda is None:
                raise Refusal(f'torch {torch.version} is a CPU-only build: no nvcc to match.')
            if _version_tuple(torch.cuda)[0] < PYPI_NVCC_MIN_MAJOR:
                raise Refusal(f'PyPI has no nvcc for CUDA {torch.cuda} (torch {torch.version}).')
            print(install_pypi_nvcc(torch, pip_installer(args.python, log)))
        else:
            result = plan(env, probe_driver(), probe_torch(args.python),
                          pip_installer(args.python, log), log)
            for key, value in result.exports().items():
                print(f'export {key}={shlex.quote(value)}')
    except Refusal as err:
        print(f'[setup] {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
