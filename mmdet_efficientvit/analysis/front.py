"""The speed-accuracy front: bbox mAP of trained demo configs against their end-to-end latency.

For each (config, seed) the front trains the config with ``tools/train.py`` into
``<work root>/<config name>/seed<k>/`` (or reuses that work dir when its training finished), reads the
final validation's ``coco/bbox_mAP`` from mmengine's result files there, and times every config's
end-to-end graph at the deployment size under onnxruntime fp32 and INT8 and OpenVINO f32 in one
interleaved run (:mod:`.benchmark`). With ``int8_map`` each run's checkpoint is also exported end to
end, quantized to INT8 and both graphs scored on the val set (:mod:`.int8_accuracy`), so the table
says what INT8 costs in mAP next to what it saves in latency. :func:`pareto_front` and
:func:`dominated_by` say which configs are worth choosing; :func:`write_front` writes the CSV, the
Markdown table and the plot.
``tools/analysis_tools/front.py`` is the command line.

A work dir is *finished* when its latest training run (``<timestamp>/vis_data/scalars.json``) has
a validation at the config's last epoch and ``epoch_<max_epochs>.pth`` is there; one that exists
but is not finished is refused (:class:`UnfinishedRun`), never silently retrained.
"""
import csv
import glob
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import SetupError
from ..resources import PACKAGE_DIR
from .benchmark.cases import (ORT_FP32, ORT_INT8, end2end_cases, openvino_precisions,
                              openvino_variant)
from .benchmark.measure import time_group
from .benchmark.report import load_average, utc_date
from .int8_accuracy import GraphMaps, graph_maps, int8_data

METRIC = 'coco/bbox_mAP'
VARIANTS = {  # CSV column prefix -> benchmark variant (cases.end2end_cases)
    'latency': ORT_FP32, 'latency_int8': ORT_INT8, 'latency_openvino_f32': openvino_variant('f32')}
RATIO_COLUMNS = {'latency': 'ratio_to_tiny', 'latency_int8': 'ratio_int8_to_tiny',
                 'latency_openvino_f32': 'ratio_openvino_f32_to_tiny'}


# What a user does about a work dir that did not finish.
FIX = 'delete the directory to train it again (or rerun with --retrain: every run trains again)'


class UnfinishedRun(SetupError):
    """A work dir whose training did not finish; the message names the fix."""


@dataclass
class Run:
    """One (config, seed): where it trains and, once finished, its final mAP and checkpoint."""
    config: str
    seed: int
    work_dir: str
    max_epochs: int
    bbox_mAP: float = float('nan')
    checkpoint: Optional[str] = None
    graph_maps: Optional[GraphMaps] = None  # with --int8-map: its ONNX fp32 and INT8 mAPs


# ----------------------------------------------------------------------------------- input checks
def check_seeds(seeds: Sequence[int]) -> None:
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise SetupError(f'--seeds {" ".join(map(str, seeds))}: seed {twice[0]} is listed twice; '
                         'list each seed once')


def check_cfg_options(options: Dict) -> None:
    """Training options only: the model is what the config file says (its latency is timed from
    the file), the seed is ``--seeds``' and the work dir the front's."""
    for key in options:
        if key.split('.')[0] in ('model', 'work_dir') or key == 'randomness.seed':
            raise SetupError(f'--cfg-options {key}: the front sets seeds and work dirs itself and '
                             'times the model of the config file; put model changes in a config '
                             'file')


def load_detector_config(path: str, options: Dict, what: str = 'config'):
    """The config at ``path`` with ``options`` merged; :class:`SetupError` for a missing file, a
    config without an mmdet detector, and one that is not trained by epochs."""
    from mmdet.utils import register_all_modules

    from ..models.builders import check_detector_config
    from ..resources import load_config
    if not osp.isfile(path):
        raise SetupError(f'{what} not found: {path} (give the config file, e.g. '
                         'configs/demo/rtmdet_tiny_demo_shapes.py)')
    cfg = load_config(path)
    cfg.merge_from_dict(options)
    register_all_modules(init_default_scope=False)
    check_detector_config(cfg, path)
    if not cfg.get('train_cfg', {}).get('max_epochs'):
        raise SetupError(f'{path} does not train by epochs (no train_cfg.max_epochs): the front '
                         "reads the last epoch's validation; use an epoch-based config")
    return cfg


def config_name(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def display_path(path: str) -> str:
    """``path`` relative to the working directory (the repository root) when it is inside it."""
    rel = osp.relpath(osp.abspath(path))
    return path if rel.startswith('..') else rel


# -------------------------------------------------------------------------------- work dir results
def _scalar_file(run_dir: str) -> Optional[str]:
    """mmengine's scalar log of one run (``vis_data/scalars.json``, else ``vis_data/<ts>.json``)."""
    for name in ('scalars.json', f'{osp.basename(run_dir)}.json'):
        path = osp.join(run_dir, 'vis_data', name)
        if osp.isfile(path):
            return path
    return None


def _records(path: str) -> List[dict]:
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
    return records


def training_records(work_dir: str) -> List[dict]:
    """The scalar records of the latest training run in ``work_dir`` (empty: none there).

    Runs are mmengine's ``<timestamp>/`` folders; ``tools/test.py`` runs there log no training
    records and are passed over."""
    for run_dir in sorted(glob.glob(osp.join(work_dir, '*', '')), reverse=True):
        path = _scalar_file(run_dir.rstrip('/'))
        records = _records(path) if path else []
        if any('epoch' in r and 'iter' in r for r in records):
            return records
    return []


def read_run(run: Run) -> Optional[Run]:
    """``run`` with its final bbox mAP and checkpoint when its work dir is finished; None when the
    work dir does not exist (not trained yet); :class:`UnfinishedRun` otherwise."""
    if not osp.isdir(run.work_dir):
        return None
    last = run.max_epochs
    records = training_records(run.work_dir)
    checkpoint = osp.join(run.work_dir, f'epoch_{last}.pth')
    final = [r for r in records if METRIC in r and r.get('step') == last]
    epochs = [r['epoch'] for r in records if 'epoch' in r]
    if not records:
        reason = 'no training log (<timestamp>/vis_data/scalars.json)'
    elif not final and max(epochs) < last:
        reason = f'its last run stopped in epoch {max(epochs)} of {last}'
    elif not final:
        reason = f'no {METRIC} of the epoch-{last} validation in its last run'
    elif not osp.isfile(checkpoint):
        reason = f'no {osp.basename(checkpoint)}'
    else:
        run.bbox_mAP, run.checkpoint = float(final[-1][METRIC]), checkpoint
        return run
    raise UnfinishedRun(f'{run.work_dir}: training did not finish ({reason}): {FIX}')


# -------------------------------------------------------------------------------------- training
def train_command(run: Run, cfg_options: Sequence[str]) -> List[str]:
    """``tools/train.py`` through the package's command (``python -m mmdet_efficientvit train``)."""
    return [sys.executable, '-m', 'mmdet_efficientvit', 'train', run.config, '--work-dir',
            run.work_dir, '--cfg-options', f'randomness.seed={run.seed}', *cfg_options]


def _epoch(run: Run) -> int:
    """The epoch that the run's latest training record is in (0: none logged yet)."""
    records = [r for r in training_records(run.work_dir) if 'epoch' in r]
    return records[-1]['epoch'] if records else 0


def train_runs(runs: List[Run], cfg_options: Sequence[str], jobs: int, log: Callable,
               poll_s: float = 30.0) -> Dict[str, str]:
    """Train ``runs``, ``jobs`` at a time, each on one thread (``OMP_NUM_THREADS=1``), logging
    each run's epoch as it starts; each run's output goes to ``<work_dir>/front_train.log``.
    Returns one line per failed run, by work dir (empty: none failed)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(filter(None, [osp.dirname(PACKAGE_DIR),
                                                        os.environ.get('PYTHONPATH')])))
    pending, running, failed = list(runs), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            run = pending.pop(0)
            os.makedirs(run.work_dir, exist_ok=True)
            out = open(osp.join(run.work_dir, 'front_train.log'), 'a')
            proc = subprocess.Popen(train_command(run, cfg_options), env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
            running[proc] = (run, out, time.time(), 0)
            log(f'{config_name(run.config)} seed {run.seed}: training into {run.work_dir}')
        time.sleep(poll_s if running else 0)
        for proc, (run, out, start, shown) in list(running.items()):
            minutes = (time.time() - start) / 60
            if proc.poll() is None:
                epoch = _epoch(run)
                if epoch != shown:
                    log(f'{config_name(run.config)} seed {run.seed}: epoch {epoch}/{run.max_epochs}, '
                        f'{minutes:.1f} min so far')
                running[proc] = (run, out, start, epoch)
                continue
            out.close()
            del running[proc]
            if proc.returncode == 0:
                log(f'{config_name(run.config)} seed {run.seed}: trained in {minutes:.1f} min')
                continue
            with open(out.name) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            # the tool's one-line error if it gave one, else the exception line of the traceback
            said = next((ln for ln in reversed(lines) if ln.startswith('error: ')),
                        lines[-1] if lines else 'no output')
            failed[run.work_dir] = (f'{run.work_dir}: training failed (exit {proc.returncode}: '
                                    f'{said}); see {out.name}, then {FIX}')
    return failed


# ---------------------------------------------------------------------------------- INT8 accuracy
def measure_int8_maps(runs: List[Run], cfg_options: Dict, calib_num: int, threads: int,
                      log: Callable) -> str:
    """Each run's :class:`GraphMaps` (:func:`.int8_accuracy.graph_maps`), set on the run; returns
    the table's note on how they were measured."""
    for i, run in enumerate(runs, 1):
        name = f'{config_name(run.config)} seed {run.seed}'
        log(f'{name}: INT8 mAP {i}/{len(runs)}: exporting {run.checkpoint}')
        run.graph_maps = maps = graph_maps(run.config, run.checkpoint, cfg_options, calib_num,
                                           threads, lambda msg: log(f'{name}: {msg}'))
        log(f'{name}: bbox_mAP {run.bbox_mAP:.4f} (PyTorch), ONNX fp32 {maps.fp32:.4f}, INT8 '
            f'{maps.int8:.4f} (loss {maps.loss:+.4f}) in {maps.seconds:.0f} s')
    return ('INT8 mAP: each checkpoint exported end to end at its test pipeline\'s size '
            '(`export_onnx.py --end2end`), its INT8 copy (`--quantize int8`, static QDQ) calibrated '
            f'on the first {calib_num} images of the config\'s training set, both scored on its val '
            'set with onnxruntime as `onnx_inference.py --eval` scores them; INT8 loss = ONNX fp32 '
            'mAP - INT8 mAP.')


# ---------------------------------------------------------------------------------------- latency
def measure_latencies(configs: List[str], reference: str, checkpoints: Dict[str, str], size: str,
                      threads: int, repeats: int, warmup: int, min_run_time: float,
                      log: Callable) -> Tuple[Dict[str, Dict[str, float]], List[str]]:
    """ms per image of each config's end-to-end graph, per column prefix of :data:`VARIANTS`, all
    timed interleaved in one run (:func:`..benchmark.measure.time_group`), and notes on what is
    left out (OpenVINO not installed)."""
    precisions, note = openvino_precisions()
    openvino = ('f32', ) if 'f32' in precisions else ()
    notes = [] if openvino else [note]
    wanted = {variant: prefix for prefix, variant in VARIANTS.items()}
    with tempfile.TemporaryDirectory() as tmpdir:
        cases = [c for c in end2end_cases(configs, size, 0, threads, tmpdir, log, group='front',
                                          reference=reference, openvino_detectors=configs,
                                          openvino_precisions=openvino,
                                          checkpoints=checkpoints)[0] if c.variant in wanted]
        log(f'timing {len(cases)} graphs interleaved, {repeats} repeats')
        seconds = time_group(cases, 1, repeats, warmup, min_run_time, log)
    latency = {config: {} for config in configs}
    names = {config_name(c): c for c in configs}
    for case in cases:
        latency[names[case.model]][wanted[case.variant]] = seconds[case.key] * 1e3
    return latency, notes


# ----------------------------------------------------------------------------------------- Pareto
def _dominates(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    """``a`` (latency, mAP) is at least as fast and as accurate as ``b`` and better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and a != b


def pareto_front(points: Dict[str, Tuple[float, float]]) -> List[str]:
    """The names whose (latency, mAP) no other point dominates, fastest first."""
    front = [n for n, p in points.items() if not any(_dominates(q, p) for q in points.values())]
    return sorted(front, key=lambda n: points[n])


def dominated_by(points: Dict[str, Tuple[float, float]],
                 baselines: Sequence[str]) -> Dict[str, List[str]]:
    """For every non-baseline name, the baselines that beat it on both axes (at least as fast and
    as accurate, better in one). Empty lists everywhere: every member is on or above the line
    through the baseline points."""
    return {n: [b for b in baselines if _dominates(points[b], p)]
            for n, p in points.items() if n not in baselines}


# ----------------------------------------------------------------------------------------- report
@dataclass
class Front:
    """Everything the report needs."""
    runs: List[Run]
    latency: Dict[str, Dict[str, float]]
    reference: str
    baselines: List[str]
    meta: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def mean_maps(self, value: Callable[[Run], float] = lambda run: run.bbox_mAP
                  ) -> Dict[str, float]:
        """config -> the mean over its seeds of ``value`` (default: the bbox mAP)."""
        maps = {}
        for run in self.runs:
            maps.setdefault(run.config, []).append(value(run))
        return {c: sum(v) / len(v) for c, v in maps.items()}

    def int8_measured(self) -> bool:
        return any(run.graph_maps for run in self.runs)

    def points(self) -> Dict[str, Tuple[float, float]]:
        """config -> (onnxruntime fp32 ms, mean mAP over seeds)."""
        return {c: (self.latency[c]['latency'], m) for c, m in self.mean_maps().items()}

    def ratio(self, config: str, prefix: str) -> float:
        ref = self.latency[self.reference].get(prefix, float('nan'))
        return self.latency[config].get(prefix, float('nan')) / ref

    def rows(self) -> List[Dict[str, object]]:
        means, points = self.mean_maps(), self.points()
        front, beaten = pareto_front(points), dominated_by(points, self.baselines)
        int8 = self.int8_measured()
        if int8:
            int8_means = self.mean_maps(lambda run: run.graph_maps.int8)
            loss_means = self.mean_maps(lambda run: run.graph_maps.loss)
        rows = []
        for run in self.runs:
            row = dict(config=display_path(run.config), seed=run.seed,
                       bbox_mAP=f'{run.bbox_mAP:.4f}', bbox_mAP_mean=f'{means[run.config]:.4f}')
            if int8:
                maps = run.graph_maps
                row.update(bbox_mAP_onnx_fp32=f'{maps.fp32:.4f}', bbox_mAP_int8=f'{maps.int8:.4f}',
                           bbox_mAP_int8_mean=f'{int8_means[run.config]:.4f}',
                           int8_loss=f'{maps.loss:.4f}',
                           int8_loss_mean=f'{loss_means[run.config]:.4f}')
            for prefix, ratio in RATIO_COLUMNS.items():
                ms = self.latency[run.config].get(prefix)
                row[f'{prefix}_ms'] = '' if ms is None else f'{ms:.2f}'
                row[ratio] = '' if ms is None else f'{self.ratio(run.config, prefix):.3f}'
            row.update(pareto=int(run.config in front),
                       dominated_by=';'.join(display_path(b) for b in beaten.get(run.config, [])),
                       work_dir=run.work_dir, reference=display_path(self.reference), **self.meta)
            rows.append(row)
        return rows


def _fmt(text: str, suffix: str = '') -> str:
    return f'{text}{suffix}' if text else '-'


def markdown(front: Front) -> str:
    int8 = front.int8_measured()
    header = ['config', 'seed', 'bbox mAP', 'mean over seeds',
              *(['ONNX fp32 mAP', 'INT8 mAP', 'INT8 mean', 'INT8 loss', 'INT8 loss mean'] if int8
                else []),
              'onnxruntime fp32 (ms)', '÷ reference', 'INT8 (ms)', '÷ reference',
              'OpenVINO f32 (ms)', '÷ reference', 'on the front', 'beaten by a baseline']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    int8_columns = ['bbox_mAP_onnx_fp32', 'bbox_mAP_int8', 'bbox_mAP_int8_mean', 'int8_loss',
                    'int8_loss_mean'] if int8 else []
    for r in front.rows():
        lines.append('| ' + ' | '.join([
            f'`{r["config"]}`', str(r['seed']), r['bbox_mAP'], r['bbox_mAP_mean'],
            *[r[c] for c in int8_columns],
            *[_fmt(r[f'{p}_ms']) + ' | ' + _fmt(r[q], '×') for p, q in RATIO_COLUMNS.items()],
            'yes' if r['pareto'] else 'no', _fmt(r['dominated_by'].replace(';', ', '))]) + ' |')
    return '\n'.join(lines)


def plot_front(points: Dict[str, Tuple[float, float]], path: str, title: str,
               xlabel: str = 'latency (ms), onnxruntime fp32 end to end',
               seed_maps: Optional[Dict[str, List[float]]] = None,
               baselines: Sequence[str] = ()) -> None:
    """mAP against latency: one point per model (its mean), its seeds' mAPs as small dots, the
    Pareto front as a line, and the baselines' own line dashed."""
    import matplotlib
    matplotlib.use('Agg')  # file output only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    # each point is numbered (in latency order) and named in a key beside the axes: any number of
    # close neighbours stays readable
    key = []
    for i, (name, (lat, value)) in enumerate(sorted(points.items(), key=lambda item: item[1]), 1):
        base = name in baselines
        ax.plot(lat, value, 's' if base else 'o', color='tab:gray' if base else 'tab:blue')
        for v in (seed_maps or {}).get(name, []):
            ax.plot(lat, v, '.', color='tab:gray' if base else 'tab:blue', alpha=0.5, ms=4)
        ax.annotate(str(i), (lat, value), fontsize=8, xytext=(4, 3), textcoords='offset points')
        key.append(f'{i:>2}  {name}: {lat:.0f} ms, {value:.3f}')
    ax.text(1.02, 1.0, '\n'.join(key), transform=ax.transAxes, va='top', fontsize=7,
            family='monospace')
    front = pareto_front(points)
    ax.plot(*zip(*(points[n] for n in front)), '-', color='tab:green', lw=1.5, label='Pareto front')
    if len(baselines) > 1:
        ax.plot(*zip(*sorted(points[b] for b in baselines)), '--', color='tab:gray', lw=1,
                label='baselines')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('bbox mAP@[.5:.95]')
    fig.suptitle(textwrap.fill(title, 140), fontsize=8)
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    ax.legend(fontsize=8, loc='lower right')
    fig.subplots_adjust(left=0.07, right=0.64, top=0.88, bottom=0.11)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_front(front: Front, csv_path: str) -> Tuple[str, str]:
    """The CSV at ``csv_path``, the Markdown table (``.md``) and the plot (``.png``) next to it."""
    rows = front.rows()
    os.makedirs(osp.dirname(osp.abspath(csv_path)), exist_ok=True)
    with open(csv_path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem = csv_path.rsplit('.', 1)[0]
    info = ', '.join(f'{k} {v}' for k, v in front.meta.items())
    with open(f'{stem}.md', 'w') as f:
        f.write('\n\n'.join([markdown(front), info] + front.notes) + '\n')
    names = {c: config_name(c) for c in front.latency}
    seeds = {}
    for run in front.runs:
        seeds.setdefault(names[run.config], []).append(run.bbox_mAP)
    plot_front({names[c]: p for c, p in front.points().items()}, f'{stem}.png',
               f'bbox mAP (mean over seeds) vs latency; {info}', seed_maps=seeds,
               baselines=[names[b] for b in front.baselines])
    return f'{stem}.md', f'{stem}.png'


# ------------------------------------------------------------------------------------ the command
def plan_runs(configs: Sequence[str], reference: str, baselines: Sequence[str], seeds: Sequence[int],
              work_root: str, cfg_options: Dict) -> Tuple[List[str], List[Run]]:
    """Checked inputs: the configs to compare (the reference and baselines added when not listed,
    each once) and one :class:`Run` per (config, seed)."""
    check_seeds(seeds)
    check_cfg_options(cfg_options)
    load_detector_config(reference, cfg_options, what='--reference config')
    configs = list(dict.fromkeys([*configs, reference, *baselines]))
    names = [config_name(c) for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SetupError(f'two configs are named {twice[0]}.py: the work dirs and the report name '
                         'configs by file name; rename one')
    runs = []
    for config in configs:
        epochs = load_detector_config(config, cfg_options).train_cfg.max_epochs
        runs += [Run(config, s, osp.join(work_root, config_name(config), f'seed{s}'), epochs)
                 for s in seeds]
    return configs, runs


def parse_cfg_options(items: Sequence[str]) -> Dict:
    """``key=value`` strings as mmengine's ``--cfg-options`` parses them (``DictAction``)."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--cfg-options', *items] if items else []).cfg_options


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_front(configs: Sequence[str], reference: str, baselines: Sequence[str],
              seeds: Sequence[int], work_root: str, cfg_options: Sequence[str], jobs: int,
              retrain: bool, trained_weights: bool, size: str, threads: int, repeats: int,
              warmup: int, min_run_time: float, log: Callable, poll_s: float = 30.0,
              int8_map: bool = False, calib_num: int = 64) -> Front:
    """Check the inputs and every existing work dir, train what is not there (everything with
    ``retrain``), read the mAPs, with ``int8_map`` measure every run's ONNX fp32 and INT8 mAPs
    (:func:`measure_int8_maps`, on ``calib_num`` calibration images) and time the graphs: the
    :class:`Front` to write. Unfinished work dirs and failed trainings are one ``error:`` line each,
    all in one :class:`SetupError`; nothing that finished is trained again without ``retrain``. The
    data the INT8 step reads is checked before anything is trained."""
    options = parse_cfg_options(cfg_options)
    configs, runs = plan_runs(configs, reference, baselines, seeds, work_root, options)
    if int8_map:
        for config in configs:
            int8_data(load_detector_config(config, options), config)
    to_train, problems = [], []
    for run in runs:
        try:
            done = None if retrain else read_run(run)
        except UnfinishedRun as err:
            problems.append(str(err))
            continue
        if done is None:
            to_train.append(run)
        else:
            log(f'{config_name(run.config)} seed {run.seed}: reusing {run.work_dir} '
                f'(bbox_mAP {run.bbox_mAP:.4f})')
    if problems:
        raise SetupError('\nerror: '.join(problems))
    log(f'{len(to_train)} of {len(runs)} runs to train, {jobs} at a time')
    failed = train_runs(to_train, cfg_options, jobs, log, poll_s)
    for run in (r for r in to_train if r.work_dir not in failed):
        try:
            read_run(run)  # a run that exited 0 may still lack its final validation
        except UnfinishedRun as err:
            failed[run.work_dir] = str(err)
    if failed:
        raise SetupError('\nerror: '.join(failed.values()))
    first = {}
    for run in sorted(runs, key=lambda r: r.seed):
        first.setdefault(run.config, run)
    checkpoints = {c: r.checkpoint for c, r in first.items()} if trained_weights else {}
    int8_note = (measure_int8_maps(runs, options, calib_num, threads, log) if int8_map else None)
    latency, notes = measure_latencies(configs, reference, checkpoints, size, threads, repeats,
                                       warmup, min_run_time, log)
    notes += [int8_note] if int8_note else []
    weights = (f'trained (seed {min(seeds)} checkpoints)' if trained_weights else 'random')
    meta = dict(input_size=size, threads=str(threads), weights=weights, repeats=str(repeats),
                cpu=cpu_name(), torch=torch.__version__,
                loadavg_at_end=load_average(), date=utc_date())
    return Front(runs, latency, reference, list(dict.fromkeys([reference, *baselines])), meta, notes)
