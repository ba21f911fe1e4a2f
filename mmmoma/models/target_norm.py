"""TargetNorm: how teacher features are normalised before the loss."""
import math
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

#: ``target_norm`` values. ``layer_norm`` and ``none`` need no statistics.
TARGET_NORMS = ('layer_norm', 'none', 'channel', 'position', 'phi_s')
#: How the data statistics of the other norms are estimated.
TARGET_STATS = ('ema', 'fixed')


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def hadamard(n: int) -> torch.Tensor:
    """A normalized (orthogonal) Hadamard matrix of order ``n``, float64.

    Sylvester's doubling of a core of order 1, 2, or ``q + 1`` for a prime
    ``q = 3 (mod 4)`` built by Paley's first construction (order 12, 20, 24,
    44, ...): every ViT width in use (192, 384, 768, 1024, 1280, 1536)
    has one.

    Args:
        n (int): The order.

    Returns:
        torch.Tensor: (n, n) with entries +-1/sqrt(n) and ``H @ H.T = I``.
    """
    core, m = None, n
    while m % 2 == 0 and not (m - 1 > 2 and _is_prime(m - 1)
                              and (m - 1) % 4 == 3):
        m //= 2
    if m == 1:
        core = torch.ones(1, 1, dtype=torch.float64)
    elif _is_prime(m - 1) and (m - 1) % 4 == 3:
        q = m - 1
        residues = {(i * i) % q for i in range(1, q)}
        chi = torch.tensor([0.0] + [1.0 if i in residues else -1.0
                                    for i in range(1, q)],
                           dtype=torch.float64)
        idx = torch.arange(q)
        jacobsthal = chi[(idx[None, :] - idx[:, None]) % q]  # antisymmetric
        core = torch.eye(m, dtype=torch.float64)
        core[0, 1:] += 1
        core[1:, 0] -= 1
        core[1:, 1:] += jacobsthal
    if core is None:
        raise ValueError(
            "SmoothL1AlignHead: target_norm='phi_s' needs a Hadamard matrix "
            f'of order {n} (the teacher width); known orders are 2^k * m with '
            'm = 1 or m = q + 1 for a prime q = 3 (mod 4) (e.g. 128, 192, '
            "384, 768, 1024); use target_norm='channel' for this teacher.")
    h = core
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


class TargetNorm(nn.Module):
    """Normalises (B, 1 + L, C) teacher features before the alignment loss.

    - ``'layer_norm'``: per token, no affine (MAE's normalised pixels; the
      MOMA recipe). ``'none'``: raw features.
    - ``'channel'``: per-channel standardisation with statistics over the
      data, one set for the class token and one shared by the patches
      (adapted from UNIC's EMA-standardised targets and Theia's dataset
      statistics).
    - ``'position'``: per-(position, channel) statistics.
    - ``'phi_s'``: PHI-S (arXiv 2410.01680, NVIDIA RADIO): centre, rotate by
      the PCA basis, mix with a normalized Hadamard matrix so that every
      channel carries the mean eigenvalue, scale by one factor to unit
      variance. Invertible and isotropic per channel; class token and
      patches get separate statistics.

    Statistics are persistent buffers (a resumed run is exact) and are
    all-reduced across processes before each update (N processes agree with
    one). ``stats='ema'`` updates them in every training step, the first
    step setting them (warm start); ``stats='fixed'`` takes them from a
    one-pass estimate before training (:class:`TargetStatsHook`,
    :meth:`accumulate` then :meth:`finish`) and never changes them.

    Args:
        mode (str): One of :data:`TARGET_NORMS`.
        channels (int, optional): Teacher width C; needed by the statistic
            modes. Defaults to None.
        num_tokens (int, optional): 1 + L; needed by ``'position'``.
            Defaults to None.
        stats (str): ``'ema'`` or ``'fixed'``. Defaults to ``'ema'``.
        momentum (float): EMA weight of a new batch. Defaults to 0.01
            (choice: about the last 100 steps; UNIC's order of magnitude).
        eps (float): Added to the variance (eigenvalues for PHI-S).
            Defaults to 1e-5 (BatchNorm's).
        refresh_interval (int): ``'phi_s'`` with ``'ema'``: recompute the
            transform (an eigendecomposition of C x C) every N updates.
            Defaults to 1.
    """

    def __init__(self,
                 mode: str = 'layer_norm',
                 channels: Optional[int] = None,
                 num_tokens: Optional[int] = None,
                 stats: str = 'ema',
                 momentum: float = 0.01,
                 eps: float = 1e-5,
                 refresh_interval: int = 1) -> None:
        super().__init__()
        if mode not in TARGET_NORMS:
            raise ValueError(
                f'SmoothL1AlignHead: target_norm={mode!r} is not supported; '
                f'allowed: {TARGET_NORMS}.')
        if stats not in TARGET_STATS:
            raise ValueError(
                f'SmoothL1AlignHead: target_stats={stats!r} is not '
                f'supported; allowed: {TARGET_STATS}.')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f'SmoothL1AlignHead: target_momentum='
                             f'{momentum!r} must be a number in (0, 1].')
        if not (isinstance(refresh_interval, int) and refresh_interval >= 1):
            raise ValueError(
                f'SmoothL1AlignHead: target_refresh_interval='
                f'{refresh_interval!r} must be an int >= 1.')
        self.mode, self.stats = mode, stats
        self.momentum, self.eps = float(momentum), float(eps)
        self.refresh_interval = refresh_interval
        if not self.uses_stats:
            return
        if not (isinstance(channels, int) and channels > 0):
            raise ValueError(
                f'SmoothL1AlignHead: target_norm={mode!r} needs '
                f'in_channels (the teacher width), got {channels!r}; '
                'MomaAlgorithm fills it in.')
        if mode == 'position' and not (isinstance(num_tokens, int)
                                       and num_tokens > 1):
            raise ValueError(
                "SmoothL1AlignHead: target_norm='position' needs num_tokens "
                f'(1 + L), got {num_tokens!r}; MomaAlgorithm fills it in.')
        groups = num_tokens if mode == 'position' else 2
        self.channels, self.groups = channels, groups
        f64 = dict(dtype=torch.float64)
        self.register_buffer('updates', torch.zeros(groups, dtype=torch.long))
        self.register_buffer('mean', torch.zeros(groups, channels, **f64))
        if mode == 'phi_s':
            eye = torch.eye(channels, **f64).expand(groups, -1, -1)
            self.register_buffer('cov', eye.clone())
            self.register_buffer('transform', eye.clone())
            self.register_buffer('hadamard', hadamard(channels),
                                 persistent=False)
        else:
            self.register_buffer('var', torch.ones(groups, channels, **f64))
        self._sums: Optional[Tuple[torch.Tensor, ...]] = None

    @property
    def uses_stats(self) -> bool:
        """Whether the mode needs data statistics."""
        return self.mode in ('channel', 'position', 'phi_s')

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, stats={self.stats!r}'

    def group_index(self, num_tokens: int,
                    device: torch.device) -> torch.Tensor:
        """(1 + L, ) statistics group of each position."""
        if self.mode == 'position':
            return torch.arange(num_tokens, device=device)
        index = torch.ones(num_tokens, dtype=torch.long, device=device)
        index[0] = 0
        return index

    def forward(self,
                target: torch.Tensor,
                valid: Optional[torch.Tensor] = None,
                update: bool = False) -> torch.Tensor:
        """Normalise ``target``; with ``update``, update statistics first.

        Args:
            target (torch.Tensor): (B, 1 + L, C) float32 teacher features.
            valid (torch.Tensor, optional): (B, 1 + L) bool, positions with
                a real feature (only these enter statistics). Defaults to
                None (all).
            update (bool): A training step of ``stats='ema'``: update the
                statistics with this batch. Defaults to False.

        Returns:
            torch.Tensor: (B, 1 + L, C) float32.
        """
        if self.mode == 'layer_norm':
            return F.layer_norm(target, target.shape[-1:], eps=1e-6)
        if self.mode == 'none':
            return target
        # float32 targets stay float32 under AMP (the PHI-S einsum would
        # run in half precision)
        with torch.autocast(target.device.type, enabled=False):
            return self._standardize(target, valid, update)

    def _standardize(self, target: torch.Tensor,
                     valid: Optional[torch.Tensor],
                     update: bool) -> torch.Tensor:
        if update and self.stats == 'ema':
            self._ema_update(target, valid)
        if self.stats == 'fixed' and not bool(self.updates.any()):
            raise RuntimeError(
                "SmoothL1AlignHead: target_stats='fixed' has no statistics "
                'yet; add dict(type=\'mmmoma.TargetStatsHook\') to '
                "custom_hooks (a one-pass estimate before training) or use "
                "target_stats='ema'.")
        group = self.group_index(target.shape[1], target.device)
        mean = self.mean[group].to(target.dtype)  # (1 + L, C)
        if self.mode == 'phi_s':
            transform = self.transform[group].to(target.dtype)
            # (B, 1 + L, C) x (1 + L, C, C): y_p = W_g(p) (x_p - mu_g(p))
            return torch.einsum('blc,ldc->bld', target - mean, transform)
        std = (self.var[group] + self.eps).sqrt().to(target.dtype)
        return (target - mean) / std

    def inverse(self, normed: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward` (statistic modes): (B, 1 + L, C)."""
        group = self.group_index(normed.shape[1], normed.device)
        mean = self.mean[group].to(normed.dtype)
        if self.mode == 'phi_s':
            inv = torch.linalg.inv(self.transform[group]).to(normed.dtype)
            return torch.einsum('bld,lcd->blc', normed, inv) + mean
        return normed * (self.var[group] + self.eps).sqrt().to(
            normed.dtype) + mean

    @torch.no_grad()
    def batch_sums(self, target: torch.Tensor,
                   valid: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Per-group count, sum and (co)variance sum of a batch, shifted by
        the current mean for precision, summed over processes.

        Returns:
            tuple: ``count`` (G, ), ``s1`` (G, C) and ``s2`` (G, C) or
            (G, C, C), float64.
        """
        x = target.detach().double() - self.mean[self.group_index(
            target.shape[1], target.device)]
        if valid is None:
            valid = torch.ones(x.shape[:2], dtype=torch.bool,
                               device=x.device)
        weight = valid.double()  # (B, 1 + L)
        group = self.group_index(x.shape[1], x.device)
        onehot = F.one_hot(group, self.groups).double()  # (1 + L, G)
        count = torch.einsum('bl,lg->g', weight, onehot)
        xw = x * weight[..., None]
        s1 = torch.einsum('blc,lg->gc', xw, onehot)
        if self.mode == 'phi_s':  # (G, C, C), one matmul per group
            s2 = torch.stack([
                xw[:, group == g].flatten(0, 1).T
                @ x[:, group == g].flatten(0, 1) for g in range(self.groups)
            ])
        else:
            s2 = torch.einsum('blc,lg->gc', xw * x, onehot)
        sums = (count, s1, s2)
        if dist.is_available() and dist.is_initialized():
            for t in sums:
                dist.all_reduce(t)
        return sums

    def _moments(self, count: torch.Tensor, s1: torch.Tensor,
                 s2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mean and (co)variance of each group from shifted sums."""
        n = count.clamp(min=1)
        shift = s1 / n[:, None]
        mean = self.mean + shift
        if self.mode == 'phi_s':
            second = s2 / n[:, None, None] - shift[:, :, None] * shift[:,
                                                                       None]
        else:
            second = s2 / n[:, None] - shift**2
        return mean, second

    @torch.compiler.disable
    @torch.no_grad()
    def _ema_update(self, target: torch.Tensor,
                    valid: Optional[torch.Tensor]) -> None:
        sums = self.batch_sums(target, valid)
        # A group's first batch sets its statistics (warm start).
        self._blend(sums, torch.where(self.updates > 0,
                                      torch.full_like(sums[0], self.momentum),
                                      torch.ones_like(sums[0])))
        if self.mode == 'phi_s' and (int(self.updates.max()) - 1
                                     ) % self.refresh_interval == 0:
            self._refresh()

    def _blend(self, sums: Tuple[torch.Tensor, ...],
               weight: torch.Tensor) -> None:
        """Move each group's statistics towards those of ``sums`` by
        ``weight`` (G, ); groups without a token keep theirs."""
        mean, second = self._moments(*sums)
        seen = sums[0] > 0
        m = weight * seen
        self.mean.mul_(1 - m[:, None]).add_(m[:, None] * mean)
        stat = self.cov if self.mode == 'phi_s' else self.var
        shape = (-1, ) + (1, ) * (stat.dim() - 1)
        stat.mul_(1 - m.view(shape)).add_(m.view(shape) * second)
        self.updates += seen.long()

    @torch.no_grad()
    def _refresh(self) -> None:
        """PHI-S transform of each group: ``H U^T / sqrt(mean eigenvalue)``.
        """
        eigval, eigvec = torch.linalg.eigh(self.cov)  # (G, C), (G, C, C)
        scale = (eigval.clamp(min=0).mean(-1) + self.eps).rsqrt()
        h = self.hadamard.to(eigvec)
        self.transform.copy_(scale[:, None, None] *
                             (h @ eigvec.transpose(1, 2)))

    @torch.no_grad()
    def accumulate(self, target: torch.Tensor,
                   valid: Optional[torch.Tensor] = None) -> None:
        """Add a batch to the one-pass estimate (``stats='fixed'``)."""
        if not self.uses_stats:
            return
        sums = self.batch_sums(target, valid)
        self._sums = sums if self._sums is None else tuple(
            a + b for a, b in zip(self._sums, sums))

    @torch.no_grad()
    def finish(self) -> None:
        """Set the statistics from the accumulated batches."""
        if self._sums is None:
            return
        self._blend(self._sums, torch.ones_like(self._sums[0]))
        self._sums = None
        if self.mode == 'phi_s':
            self._refresh()
