"""Benchmark results as a markdown table, a CSV file and a latency-vs-FLOPs plot, what they say about
the run (load average, date), and the CSV's latencies read back (``plot_latency_map.py``)."""
import csv
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

from ...errors import SetupError
from .cases import Case

MEMORY_HEADER = 'peak RSS added by inference (MiB)'
CUDA_MEMORY_HEADER = 'peak CUDA memory added by inference (MiB)'  # measure.measure_cuda_memory


def fmt(value: float, digits: int = 1) -> str:
    return '-' if value != value else f'{value:.{digits}f}'  # NaN -> '-'


def ratio_columns(cases: List[Case]) -> Dict[str, Tuple[float, float]]:
    """(latency / reference latency, throughput / reference throughput) per case."""
    by_key = {c.key: c for c in cases}
    out = {}
    for c in cases:
        ref = by_key.get(c.reference)
        if ref is None:
            out[c.key] = (float('nan'), float('nan'))
        else:
            out[c.key] = (c.latency_ms / ref.latency_ms, c.throughput / ref.throughput)
    return out


def markdown_table(cases: List[Case], memory_header: str = MEMORY_HEADER) -> str:
    ratios = ratio_columns(cases)
    header = ['model', 'variant', 'input', 'params (M)', 'GFLOPs', 'latency bs=1 (ms)',
              'throughput img/s [bs]', 'reference', 'latency ÷ ref', 'throughput ÷ ref',
              f'{memory_header}, bs=1', 'same, bs=N']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for c in cases:
        lat_r, thr_r = ratios[c.key]
        lines.append('| ' + ' | '.join([
            c.model, c.variant, f'{c.size[0]}×{c.size[1]}', fmt(c.params / 1e6, 2),
            fmt(c.flops / 1e9, 3), fmt(c.latency_ms, 2),
            f'{fmt(c.throughput)} [{c.batch}]' if c.batch else '-',
            ', '.join((c.reference or '||').split('|')[1:]), fmt(lat_r, 2), fmt(thr_r, 2),
            fmt(c.mem_bs1), fmt(c.mem_bsn)]) + ' |')
    return '\n'.join(lines)


def write_csv(cases: List[Case], path: str, meta: Dict, memory_column: str = 'peak_rss_mib') -> None:
    ratios = ratio_columns(cases)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['group', 'model', 'variant', 'height', 'width', 'params', 'flops',
                         'latency_ms_bs1', 'throughput_img_s', 'throughput_batch', 'reference',
                         'latency_ratio', 'throughput_ratio', f'{memory_column}_bs1',
                         f'{memory_column}_bsN'] + sorted(meta))
        for c in cases:
            writer.writerow([c.group, c.model, c.variant, c.size[0], c.size[1], c.params, c.flops,
                             f'{c.latency_ms:.4f}', f'{c.throughput:.3f}', c.batch, c.reference or '',
                             f'{ratios[c.key][0]:.4f}', f'{ratios[c.key][1]:.4f}',
                             f'{c.mem_bs1:.1f}', f'{c.mem_bsn:.1f}'] + [meta[k] for k in sorted(meta)])


def read_latencies(path: str, variant: str) -> Dict[str, float]:
    """model -> latency bs=1 (ms) of ``variant`` in a CSV of :func:`write_csv`."""
    with open(path, newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['variant'] == variant]
    if not rows:
        raise SetupError(f'{path} has no rows of variant {variant!r}: pass --variant as the CSV '
                         'names it')
    return {r['model']: float(r['latency_ms_bs1']) for r in rows}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was while it was timed."""
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def utc_date() -> str:
    return time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())


def write_outputs(cases: List[Case], out: str, plot_path: Optional[str], meta: Dict, info: str,
                  log: Callable, memory_header: str = MEMORY_HEADER,
                  memory_column: str = 'peak_rss_mib') -> None:
    """The markdown table (printed and next to the CSV, ``.md``), the CSV at ``out`` and, with
    ``plot_path``, the plot; ``info`` (how and when the run was timed) under the table."""
    table = markdown_table(cases, memory_header)
    print(table)
    print(f'\n{info}')
    write_csv(cases, out, meta, memory_column)
    with open(out.rsplit('.', 1)[0] + '.md', 'w') as f:
        f.write(table + f'\n\n{info}\n')
    log(f'wrote {out}')
    if plot_path:
        plot(cases, plot_path, info)
        log(f'wrote {plot_path}')


def plot(cases: List[Case], path: str, title: str) -> None:
    """Latency against FLOPs (top row) and parameters (bottom row), one column per group."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c.group for c in cases))
    panels = [(g, [c for c in cases if c.group == g]) for g in groups]
    fig, axes = plt.subplots(2, len(panels), figsize=(6.5 * len(panels), 9), squeeze=False)
    for col, (group, cs) in enumerate(panels):
        for row, (attr, scale, label) in enumerate((('flops', 1e9, 'GFLOPs (multiply-adds)'),
                                                    ('params', 1e6, 'params (M)'))):
            ax = axes[row][col]
            variants = list(dict.fromkeys(c.variant for c in cs))
            for variant in variants:
                pts = [c for c in cs if c.variant == variant and c.latency_ms == c.latency_ms]
                xs = [getattr(c, attr) / scale for c in pts]
                ax.plot(xs, [c.latency_ms for c in pts], 'o' if group == 'detector' else 'o-',
                        label=variant)
                if variant != variants[0]:
                    continue
                for x, c in zip(xs, pts):
                    short = c.model.replace('RetinaNet-', '').replace('EfficientViT-', '')
                    ax.annotate(short, (x, c.latency_ms), fontsize=7, xytext=(3, 3),
                                textcoords='offset points')
            ax.set_title(f'{group} @ {cs[0].size[0]}×{cs[0].size[1]}, bs=1')
            ax.set_xlabel(label)
            ax.set_ylabel('latency (ms, median)')
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
