"""Safe loading of checkpoints on torch >= 2.6, where ``torch.load`` defaults to weights_only.

mmengine 0.10.7 calls ``torch.load`` with the defaults, which refuses its own checkpoints:
their ``meta`` and message hub hold numpy scalars/arrays and mmengine's ``HistoryBuffer``, whose
statistics methods are pickled as ``getattr(HistoryBuffer, 'min')``. Rather than turning
weights-only loading off, :func:`allow_checkpoint_globals` adds just those types to torch's
allow-list of safe globals, and a ``getattr`` that can only fetch those methods; importing
``tnt_backbone`` does it once.
"""
import argparse
import collections
import os
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def _numpy_globals():
    dtypes = [type(np.dtype(t)) for t in (
        'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
        'float16', 'float32', 'float64')]
    multiarray = np.core.multiarray
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *dtypes]


def history_buffer_getattr(owner, name):
    """``getattr`` as the unpickler may call it: HistoryBuffer's statistics methods only."""
    methods = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is not HistoryBuffer or name not in methods:
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only HistoryBuffer '
            f'statistics methods ({sorted(methods)}) may be looked up')
    return getattr(owner, name)


def checkpoint_globals():
    """The non-tensor types that mmengine and the TNT releases put into checkpoints."""
    return [HistoryBuffer, collections.OrderedDict, collections.defaultdict,
            argparse.Namespace, (history_buffer_getattr, 'builtins.getattr'),
            *_numpy_globals()]


def allow_checkpoint_globals():
    torch.serialization.add_safe_globals(checkpoint_globals())


def safe_torch_load(filename, map_location='cpu'):
    """``torch.load`` with weights_only=True and the allow-list above, with clear errors.

    A ``.safetensors`` file (tensors only, by its format) is read by the ``safetensors``
    package: ``torch.load`` reads that format itself only from torch 2.13 on, and environments
    with older CUDA builds of torch are common.
    """
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    allow_checkpoint_globals()
    try:
        if str(filename).endswith('.safetensors'):
            from safetensors.torch import load_file
            device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
            return load_file(filename, device=str(device))
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise RuntimeError(f'cannot load checkpoint {filename} safely: {e}') from e
