"""Plot training curves from mmengine's scalar logs (a run's ``vis_data/scalars.json``).

    python tools/analysis_tools/plot_curve.py SCALARS_JSON [SCALARS_JSON ...] \
        [--keys loss loss_cls loss_bbox] [--out outputs/loss_curve.png] [--title TEXT]

Each line of a scalars file is one JSON record with a ``step`` (the iteration for training records,
the epoch for validation records). Every key gets its own panel, plotted against ``step`` over the
records that hold it; several files (e.g. two runs) are overlaid, labelled by their run folder.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')  # file output only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def load_scalars(path: str) -> List[dict]:
    """The records of one scalars file (JSON lines), in file order."""
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{lineno} is not a JSON record ({e}); pass the '
                                 'vis_data/scalars.json written by mmengine') from None
    return records


def series(records: Sequence[dict], key: str) -> Tuple[List[float], List[float]]:
    """(steps, values) of ``key`` over the records that have both."""
    pairs = [(r['step'], r[key]) for r in records if key in r and 'step' in r]
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def plot_curves(paths: Sequence[str], keys: Sequence[str], out: str, title: str = '') -> Dict:
    """Draw one panel per key and save it to ``out``; returns {key: {path: n_points}}."""
    runs = {path: load_scalars(path) for path in paths}
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.6 * len(keys)), squeeze=False)
    counts: Dict[str, Dict[str, int]] = {}
    for ax, key in zip(axes[:, 0], keys):
        counts[key] = {}
        for path, records in runs.items():
            steps, values = series(records, key)
            counts[key][path] = len(steps)
            if steps:
                label = osp.basename(osp.dirname(osp.dirname(osp.abspath(path)))) or path
                ax.plot(steps, values, label=label, linewidth=1.2)
        if not any(counts[key].values()):
            available = sorted({k for recs in runs.values() for r in recs for k in r})
            raise KeyError(f'no record has {key!r}; keys in the file(s): {available}')
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel('iteration (step)')
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Plot scalars (loss, lr, mAP) from mmengine logs.')
    parser.add_argument('scalars', nargs='+', help='vis_data/scalars.json file(s)')
    parser.add_argument('--keys', nargs='+', default=['loss'], help='scalars to plot')
    parser.add_argument('--out', default='outputs/loss_curve.png', help='output image (PNG)')
    parser.add_argument('--title', default='', help='figure title')
    args = parser.parse_args(argv)
    counts = plot_curves(args.scalars, args.keys, args.out, args.title)
    summary = ', '.join(f'{k}: {sum(c.values())} points' for k, c in counts.items())
    print(f'wrote {args.out} ({summary})')


if __name__ == '__main__':
    main()
