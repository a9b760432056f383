"""What the scripts under ``tools/`` share beyond mmdet's own tools (the ``mmdet-efficientvit`` command
that runs them is ``commands.py``): set-up errors printed as one line (``user_errors``), arguments and
the config they give (``args``), dataset checks before a run (``data_checks``), and distributed runs
on machines without CUDA (``distributed``). It imports only ``errors`` and ``resources``, so any
module of the package may use it."""
from .args import config_from_args, parse_common_args, parse_size
from .data_checks import check_data_paths
from .distributed import setup_cpu_distributed, teardown_distributed
from .user_errors import short_errors

__all__ = ['check_data_paths', 'config_from_args', 'parse_common_args', 'parse_size',
           'setup_cpu_distributed', 'short_errors', 'teardown_distributed']
