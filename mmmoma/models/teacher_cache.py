"""TeacherCache: reuse each sample's frozen-teacher targets after its first
step."""
from typing import Callable, Dict, Optional

import torch
from mmengine.logging import print_log

from .speed import TEACHER_DTYPES


def fingerprint(images: torch.Tensor) -> torch.Tensor:
    """(B, ) float64 position-weighted sums of (B, ...) images: a flip or
    crop changes them, an identical image reproduces them."""
    flat = images.detach().flatten(1).double()
    weights = torch.linspace(
        1.0, 2.0, flat.shape[1], dtype=torch.float64, device=flat.device)
    return flat @ weights


class TeacherCache:
    """Per-sample teacher targets, keyed by the dataset's ``sample_idx``.

    For small datasets with a deterministic train pipeline: a step first
    :meth:`lookup` s the batch; on a miss the teachers run, each target is
    :meth:`store` d, and :meth:`commit` marks the samples as cached with a
    fingerprint of their input. A later lookup of a fully cached batch
    returns the stored targets (one host sync) and raises if any sample's
    input changed since (a random transform in the pipeline). Each process
    keeps its own cache, on the device of the images; it is not part of any
    checkpoint (a resumed run refills it).

    Args:
        size (int): Number of slots, at least the dataset length.
        dtype (torch.dtype): Storage dtype of the targets.
    """

    def __init__(self, size: int, dtype: torch.dtype) -> None:
        self.size = size
        self.dtype = dtype
        self.targets: Dict[str, torch.Tensor] = {}  # name -> (N, 1 + L, Ct)
        self.filled: Optional[torch.Tensor] = None  # (N, ) bool
        self.prints: Optional[torch.Tensor] = None  # (N, ) float64
        self._hit_logged = False

    @classmethod
    def build(cls, cfg: Optional[dict],
              mask_teacher_input: bool) -> Optional['TeacherCache']:
        """The cache of MomaAlgorithm's ``teacher_cache`` option, checked.

        Args:
            cfg (dict, optional): ``dict(size=N, dtype='float32')``; None for
                no cache.
            mask_teacher_input (bool): The algorithm's ablation flag, with
                which targets depend on the mask and cannot be cached.

        Returns:
            TeacherCache | None: The cache, or None when ``cfg`` is None.
        """
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise ValueError(
                f'MomaAlgorithm: teacher_cache={cfg!r} must be None or a '
                "dict like dict(size=60000, dtype='float32').")
        unknown = sorted(set(cfg) - {'size', 'dtype'})
        if unknown:
            raise ValueError(
                f'MomaAlgorithm: teacher_cache has unknown key(s) {unknown}; '
                "allowed: 'size', 'dtype'.")
        size = cfg.get('size')
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f'MomaAlgorithm: teacher_cache.size={size!r} must be a '
                'positive int, at least the number of training samples.')
        dtype = cfg.get('dtype', 'float32')
        if dtype not in TEACHER_DTYPES:
            raise ValueError(
                f'MomaAlgorithm: teacher_cache.dtype={dtype!r} is not '
                f'supported; allowed: {list(TEACHER_DTYPES)}.')
        if mask_teacher_input:
            raise ValueError(
                'MomaAlgorithm: teacher_cache needs targets that do not '
                'depend on the mask, but mask_teacher_input=True; set '
                'teacher_cache=None for that ablation.')
        return cls(size, TEACHER_DTYPES[dtype])

    def _allocate(self, device: torch.device) -> None:
        """The (N, ) flags and fingerprints, on first use."""
        if self.filled is None:
            self.filled = torch.zeros(
                self.size, dtype=torch.bool, device=device)
            self.prints = torch.zeros(
                self.size, dtype=torch.float64, device=device)

    def lookup(self, images: torch.Tensor,
               sample_ids: torch.Tensor) -> Optional[Dict[str, torch.Tensor]]:
        """The cached targets of a batch, if every sample has them.

        Args:
            images (torch.Tensor): (B, 3, H, W), the teachers' input.
            sample_ids (torch.Tensor): (B, ) int64 dataset indices.

        Returns:
            dict[str, torch.Tensor] | None: ``{teacher: (B, 1 + L, Ct)}``
            float32, or None when a sample is not cached yet.
        """
        self._allocate(images.device)
        bad = (sample_ids < 0) | (sample_ids >= self.size)
        hit, any_bad = torch.stack([
            self.filled[sample_ids.clamp(0, self.size - 1)].all(),
            bad.any()
        ]).tolist()
        if any_bad:
            raise ValueError(
                f'MomaAlgorithm: teacher_cache.size={self.size} but this '
                f'batch has sample_idx {sample_ids[bad][0].item()}; set '
                'teacher_cache.size to at least the number of training '
                'samples.')
        if not hit:
            return None
        if not self._hit_logged:
            self._hit_logged = True
            mib = sum(t.numel() * t.element_size()
                      for t in self.targets.values()) / 2**20
            print_log(
                f'MomaAlgorithm: teacher_cache reused the targets of a whole '
                f'batch for the first time; the teachers run only for '
                f'samples not cached yet ({mib:.0f} MiB per process).',
                logger='current')
        changed = ~torch.isclose(
            fingerprint(images), self.prints[sample_ids], rtol=1e-9,
            atol=1e-9)
        if changed.any():
            raise RuntimeError(
                'MomaAlgorithm: teacher_cache needs the same input image for '
                f'a sample in every epoch, but sample '
                f'{sample_ids[changed][0].item()} changed since its targets '
                'were cached: the train pipeline has a random transform '
                '(e.g. RandomResizedCrop, RandomFlip). Remove it, or set '
                'model.teacher_cache=None.')
        return {
            name: target[sample_ids].float()
            for name, target in self.targets.items()
        }

    def fetch(
        self, images: torch.Tensor, sample_ids: torch.Tensor,
        compute: Callable[[], Dict[str, torch.Tensor]]
    ) -> Dict[str, torch.Tensor]:
        """The batch's targets: cached when every sample has them, else
        ``compute()``'s, which are then stored and committed.

        Returns:
            dict[str, torch.Tensor]: ``{name: (B, ...)}``; the cached ones
            float32.
        """
        cached = self.lookup(images, sample_ids)
        if cached is not None:
            return cached
        targets = compute()
        for name, target in targets.items():
            self.store(name, sample_ids, target)
        self.commit(images, sample_ids)
        return targets

    def store(self, name: str, sample_ids: torch.Tensor,
              target: torch.Tensor) -> None:
        """Keep teacher ``name``'s (B, 1 + L, Ct) targets of the batch."""
        if name not in self.targets:
            self.targets[name] = target.new_zeros(
                (self.size, ) + tuple(target.shape[1:]), dtype=self.dtype)
        self.targets[name][sample_ids] = target.detach().to(self.dtype)

    def commit(self, images: torch.Tensor, sample_ids: torch.Tensor) -> None:
        """Mark the batch's samples cached (after every teacher's store)."""
        self._allocate(images.device)
        self.filled[sample_ids] = True
        self.prints[sample_ids] = fingerprint(images)
