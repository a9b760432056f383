"""Distributed runs (``--launcher pytorch``) on machines without CUDA: set up with gloo, end cleanly."""
import gc

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without CUDA: gloo process group and a device-less DDP.

    mmengine 0.10 initialises the process group through ``torch.cuda.set_device`` and wraps the model
    with ``device_ids=[LOCAL_RANK]``; both need a GPU. On a CPU-only machine we create the gloo group
    ourselves (mmengine then skips its own initialisation) and let DDP run on CPU tensors.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel',
                                                   broadcast_buffers=False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def teardown_distributed() -> None:
    """End a finished distributed run: collect what is left of the model, meet, leave the group.

    Call it after the last reference to the runner is dropped. A DDP wrapper still alive when the
    process group is destroyed (its reducer keeps the gloo context) aborts the rank at interpreter
    shutdown now and then ("terminate called without an active exception", seen with torch 2.14 and
    gloo on CPU; never once the wrapper is released first), which torchrun reports as a failed job.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gc.collect()
    torch_dist.barrier()
    torch_dist.destroy_process_group()
