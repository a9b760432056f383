"""Set-up mistakes reported as one ``error: <message>`` line instead of a traceback; real bugs keep
their traceback."""
import json
import re
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from mmengine.config import Config

from ..errors import CheckpointError, ConfigError, SetupError
from .data_checks import broken_annotation_file

# Errors whose message already says what is wrong and how to fix it (a missing file is named by its
# path): the tools print only the message.
USER_ERRORS = (SetupError, CheckpointError, ConfigError, FileNotFoundError)
# What mmcv's LoadImageFromFile asserts for an image file that does not decode.
_MMCV_UNREADABLE_IMAGE = re.compile(r'^failed to load image: (.+)$', re.M)


def user_message(err: BaseException) -> str:
    """The message of a user error; for one raised in a DataLoader worker (which torch re-raises
    with the worker's traceback in the message), the original message alone."""
    text = str(err)
    kind, module = type(err).__qualname__, type(err).__module__
    marker = f'{kind}: ' if module == 'builtins' else f'{module}.{kind}: '  # as tracebacks print it
    if text.startswith(f'Caught {type(err).__name__} in DataLoader worker') and marker in text:
        text = text.rpartition(marker)[2]
    return text.strip()


@contextmanager
def short_errors(cfg: Optional[Config] = None, exit_code: int = 1) -> Iterator[None]:
    """Print known set-up errors as ``error: <message>`` and exit with ``exit_code`` (1; 2 for a tool
    whose whole input is its command line, as argparse exits); let real bugs keep their traceback.

    With ``cfg``, a ``ConfigError`` names the config file, and a ``JSONDecodeError`` (pycocotools and
    mmdet do not say which file) becomes one such message naming the annotation file that does not
    parse. mmcv's assertion on an undecodable image (evaluation pipelines) becomes one naming it.
    """
    try:
        yield
    except USER_ERRORS as e:
        where = f'{cfg.filename}: ' if isinstance(e, ConfigError) and cfg is not None else ''
        print(f'error: {where}{user_message(e)}', file=sys.stderr)
        sys.exit(exit_code)
    except json.JSONDecodeError as e:
        broken = broken_annotation_file(cfg, e) if cfg is not None else None
        if broken is None:
            raise
        print(f'error: {broken}', file=sys.stderr)
        sys.exit(1)
    except AssertionError as e:  # mmcv's LoadImageFromFile on an undecodable image (evaluation)
        unreadable = _MMCV_UNREADABLE_IMAGE.search(user_message(e))
        if unreadable is None:
            raise
        print(f'error: cannot decode image {unreadable.group(1)}; evaluation reads every image of the '
              'annotation file: restore the file, or remove its entry from the annotation file',
              file=sys.stderr)
        sys.exit(1)
