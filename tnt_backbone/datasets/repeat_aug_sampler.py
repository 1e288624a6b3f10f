"""Repeated augmentation sampler (Hoffer et al., 2020), as used by DeiT and TNT."""
import math

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from ..registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class RepeatAugSampler(Sampler):
    """Each sampled image appears ``num_repeats`` times per epoch, on different ranks.

    The shuffled indices are repeated in place (``a a a b b b ...``) and dealt round-robin to the
    ranks, so the copies of an image land on different GPUs and are augmented independently.
    Each rank yields ``ceil(len(dataset) / world_size)`` indices, the length of a plain epoch:
    an epoch then covers about ``1 / num_repeats`` of the distinct images.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle every epoch (seeded by ``seed + epoch``). Defaults to True.
        num_repeats (int): Copies of each image. Defaults to 3.
        seed (int | None): Shared by all ranks; None draws one and syncs it. Defaults to None.
    """

    def __init__(self, dataset, shuffle=True, num_repeats=3, seed=None):
        if num_repeats < 1:
            raise ValueError(f'num_repeats must be >= 1, got {num_repeats}')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.shuffle = shuffle
        self.num_repeats = num_repeats
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.num_samples = math.ceil(len(dataset) / self.world_size)
        self.total_size = math.ceil(len(dataset) * num_repeats / self.world_size) \
            * self.world_size

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        indices = [i for i in indices for _ in range(self.num_repeats)]
        indices += indices[:self.total_size - len(indices)]
        return iter(indices[self.rank:self.total_size:self.world_size][:self.num_samples])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Called by the train loop so that each epoch is shuffled differently."""
        self.epoch = epoch
