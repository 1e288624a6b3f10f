"""Reading weights from wherever a user has them: one loader for every entry point.

``init_cfg=dict(type='Pretrained')``, ``load_from``/``--resume`` (through mmengine's
``CheckpointLoader``, whose local and http(s) schemes :func:`register_checkpoint_schemes` points
here) and ``tools/model_converters/tnt2mm.py`` all read files with :func:`read_checkpoint`:

- a local ``.pth``, ``.pth.tar``, ``.pt``, ``.bin`` or ``.safetensors`` file, always read
  weights-only: pickles by ``torch.load(weights_only=True)`` with the allow-list of
  :mod:`.safe_load` and nothing else, ``.safetensors`` (tensors only) by the ``safetensors``
  package;
- an http(s) URL, downloaded once into ``<torch hub dir>/checkpoints`` (``TORCH_HOME``); a name
  ending in ``-<8+ hex digits>`` before the extension (OpenMMLab's and torch hub's convention)
  is checked against the file's sha256, on download and on every later use of the cached file.

:func:`select_state_dict` then picks the weights inside a training checkpoint: the EMA copy
(``state_dict_ema``/``model_ema``, timm's and the official release's reported weights) when
there is one, unless ``ema=False``; else ``state_dict``/``model``; else the dict itself. Key
names are not touched here (that is :mod:`tnt_backbone.checkpoint`'s job).
"""
import hashlib
import os
import os.path as osp
import re
import tempfile
import urllib.error
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_load import safe_torch_load

EXTENSIONS = ('.pth', '.pth.tar', '.pt', '.bin', '.safetensors')
EMA_KEYS = ('state_dict_ema', 'model_ema')
PLAIN_KEYS = ('state_dict', 'model')
# OpenMMLab / torch hub: 'name-<first 8 or more hex digits of the sha256>.ext'
HASH_SUFFIX = re.compile(r'-([0-9a-f]{8,64})(\.[A-Za-z.]+)$')


def is_url(source):
    return isinstance(source, str) and source.startswith(('http://', 'https://'))


def check_extension(path):
    """Raises for a file name none of the supported formats ends with."""
    if not path.lower().endswith(EXTENSIONS):
        raise ValueError(f'unsupported checkpoint file type: {path} (expected one of '
                         f'{", ".join(EXTENSIONS)})')


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path, url):
    """Checks ``path`` against the hash prefix in ``url``'s file name, if it has one."""
    m = HASH_SUFFIX.search(osp.basename(urlparse(url).path))
    if m is None:
        return
    actual = sha256_of(path)
    if not actual.startswith(m.group(1)):
        raise ValueError(
            f'sha256 mismatch for {url}: its name promises {m.group(1)}..., the file '
            f'{path} has {actual[:len(m.group(1))]}... (a corrupt or substituted download; '
            f'the file was not used)')


def cache_dir():
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _download(url, cached):
    """Downloads ``url`` to ``cached`` through a temporary file; only a verified file lands."""
    os.makedirs(osp.dirname(cached), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(cached), suffix='.partial')
    os.close(fd)
    try:
        print_log(f'downloading {url} to {cached}', logger='current')
        try:
            torch.hub.download_url_to_file(url, tmp, progress=False)
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(
                f'cannot download {url}: {getattr(e, "reason", e)}. The machine may be offline '
                f'or the URL wrong; download the file elsewhere and pass its local path '
                f'instead') from e
        check_hash(tmp, url)
        os.replace(tmp, cached)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def download_checkpoint(url):
    """Local path of ``url``'s file in the torch hub cache, downloading it if not there.

    Distributed runs download on rank 0 only; the others wait, then read the cache.
    """
    name = osp.basename(urlparse(url).path)
    check_extension(name)
    cached = osp.join(cache_dir(), name)
    rank, world_size = get_dist_info()
    downloaded = rank == 0 and not osp.isfile(cached)
    if downloaded:
        _download(url, cached)  # checks the hash before the file lands
    if world_size > 1:
        barrier()
    if not downloaded:  # a cached file is re-checked: it may be stale or tampered with
        check_hash(cached, url)
    return cached


def read_checkpoint(source, map_location='cpu'):
    """The content of a checkpoint file or URL, read weights-only (see the module doc)."""
    path = download_checkpoint(source) if is_url(source) else osp.expanduser(source)
    check_extension(path)
    return safe_torch_load(path, map_location=map_location)


def select_state_dict(checkpoint, ema=True, name='the checkpoint', logger='current'):
    """The weights inside a checkpoint's content, as a plain dict of name -> tensor.

    Args:
        checkpoint (dict): What :func:`read_checkpoint` returned.
        ema (bool): Take the EMA weights (``state_dict_ema``/``model_ema``) when present.
            Defaults to True: they are the ones timm and the TNT release report.
        name (str): The file, for messages.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{name} holds a {type(checkpoint).__name__}, not a dict of weights')
    ema_key = next((k for k in EMA_KEYS if isinstance(checkpoint.get(k), dict)), None)
    plain_key = next((k for k in PLAIN_KEYS if isinstance(checkpoint.get(k), dict)), None)
    if ema_key and (ema or plain_key is None):
        print_log(f'using the EMA weights ({ema_key!r}) of {name}'
                  + (f'; ema=False takes {plain_key!r}' if plain_key else ''), logger=logger)
        return checkpoint[ema_key]
    if ema_key:
        print_log(f'using {plain_key!r} of {name}, not its EMA weights ({ema_key!r}), as '
                  f'ema=False asks', logger=logger)
    return checkpoint[plain_key] if plain_key else checkpoint


def load_state_dict_from(source, ema=True, logger='current'):
    """:func:`read_checkpoint` then :func:`select_state_dict`: a file or URL's weights."""
    return select_state_dict(read_checkpoint(source), ema=ema, name=source, logger=logger)


def load_from_local_or_url(filename, map_location=None):
    """mmengine's ``CheckpointLoader`` backend for local paths and http(s) URLs (``load_from``,
    ``--resume``, ``Pretrained`` init of non-TNT modules): :func:`read_checkpoint`, and an error
    for a foreign TNT checkpoint, whose keys mmengine would load unconverted (i.e. not at all)."""
    checkpoint = read_checkpoint(filename, map_location=map_location)
    from ..checkpoint import refuse_unconverted  # the converters import this package
    refuse_unconverted(checkpoint, filename)
    return checkpoint


def register_checkpoint_schemes():
    """Routes mmengine's local and http(s) checkpoint loading through this module."""
    CheckpointLoader.register_scheme(prefixes=['', 'http://', 'https://'],
                                     loader=load_from_local_or_url, force=True)
