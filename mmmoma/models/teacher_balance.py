"""TeacherBalance: how the per-target losses of MOMA add up."""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from .config_checks import check_balance
from .utils import keyed_uniform

#: Decorrelates teacher dropping from the mask stream of the same seed.
_DROP_SALT = 0x5DEECE66D


class TeacherBalance(nn.Module):
    """Weights each target's loss: the paper's average, or beyond it.

    - ``'average'`` (MOMA): ``loss_<target> = weight * loss``, the
      teacher's ``loss_weights`` entry shared by its targets.
    - ``'drop'`` (UNIC's teacher dropping): per image, the target of highest
      loss always counts and every other one is dropped with probability
      ``p``; the kept (target, image) losses are weighted and normalised over
      the whole batch of all processes. Draws are keyed by (seed, step,
      sample), like the masks.
    - ``'uncertainty'`` (uncertainty weighting, Kendall et al. 2018; the
      learnable teacher weights the MOMA paper leaves to future work): one
      learned log-variance ``s`` per teacher,
      ``loss = weight * (exp(-s) * loss + s)``; ``s = 0`` at the start, the
      paper's average.

    Besides ``loss_<target>``, the non-average balances log each target's
    effective weight as ``weight_<target>`` (what multiplies its raw loss,
    summed over the batch for ``'drop'``) and ``'uncertainty'`` adds
    ``loss_log_var``.

    Args:
        cfg (dict, optional): ``dict(type='average' | 'drop' |
            'uncertainty', p=0.5)``; None: average.
        teachers (list[str]): The teacher names, in config order.
    """

    def __init__(self, cfg: Optional[dict], teachers: List[str]) -> None:
        super().__init__()
        cfg = check_balance(cfg)
        self.kind = cfg['type']
        self.p = cfg.get('p', 0.0)
        self.teachers = list(teachers)
        if self.kind == 'uncertainty':
            self.log_vars = nn.Parameter(torch.zeros(len(teachers)))

    @property
    def per_sample(self) -> bool:
        """Whether it needs (B, ) per-sample losses from the heads."""
        return self.kind == 'drop'

    def extra_repr(self) -> str:
        return f'kind={self.kind!r}' + (f', p={self.p}'
                                         if self.kind == 'drop' else '')

    def forward(self, raw: Dict[str, torch.Tensor],
                weights: Dict[str, float], owner: Dict[str, str],
                seed: torch.Tensor, step: torch.Tensor,
                sample_ids: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The losses to log and sum.

        Args:
            raw (dict[str, torch.Tensor]): ``{target: loss}``, scalars, or
                (B, ) per sample for ``'drop'``.
            weights (dict[str, float]): ``{target: weight}``.
            owner (dict[str, str]): ``{target: teacher}``.
            seed (torch.Tensor): () int64, the model's mask seed.
            step (torch.Tensor): () int64, this step.
            sample_ids (torch.Tensor, optional): (B, ) keys of the drops.

        Returns:
            dict[str, torch.Tensor]: ``loss_<target>`` (their sum is the
            training loss) and, see above, ``weight_<target>``,
            ``loss_log_var``.
        """
        if self.kind == 'average':
            return {f'loss_{k}': v * weights[k] for k, v in raw.items()}
        keys = list(raw)
        w = torch.tensor([weights[k] for k in keys], device=step.device)
        if self.kind == 'uncertainty':
            index = [self.teachers.index(owner[k]) for k in keys]
            scale = w * torch.exp(-self.log_vars[index])  # (T, )
            out = {f'loss_{k}': scale[i] * raw[k] for i, k in enumerate(keys)}
            teacher_w = torch.zeros_like(self.log_vars)
            for i, k in zip(index, keys):
                teacher_w[i] += weights[k]
            out['loss_log_var'] = (teacher_w * self.log_vars).sum()
            out.update({f'weight_{k}': scale[i].detach()
                        for i, k in enumerate(keys)})
            return out
        losses = torch.stack([raw[k] for k in keys])  # (T, B)
        coeff = self.drop_mask(losses.detach(), seed, step,
                               sample_ids) * w[:, None]
        # Normalised over the whole (all-process) batch, so that N processes
        # train like one; DDP averages gradients, hence the factor N.
        per_key = coeff.sum(1)
        world = 1
        if dist.is_available() and dist.is_initialized():
            per_key = per_key.clone()
            dist.all_reduce(per_key)
            world = dist.get_world_size()
        total = per_key.sum().clamp(min=1e-12)
        coeff = coeff * (w.sum() * world / total)
        out = {f'loss_{k}': (coeff[i] * losses[i]).sum()
               for i, k in enumerate(keys)}
        share = per_key * (w.sum() / total)
        out.update({f'weight_{k}': share[i] for i, k in enumerate(keys)})
        return out

    def drop_mask(self, losses: torch.Tensor, seed: torch.Tensor,
                  step: torch.Tensor,
                  sample_ids: Optional[torch.Tensor]) -> torch.Tensor:
        """Which (target, sample) losses count this step.

        Args:
            losses (torch.Tensor): (T, B) per-sample losses.
            seed (torch.Tensor): () int64.
            step (torch.Tensor): () int64.
            sample_ids (torch.Tensor, optional): (B, ) dataset indices;
                None: the global generator.

        Returns:
            torch.Tensor: (T, B) float, 1 where the loss counts.
        """
        num, batch = losses.shape
        if sample_ids is None:
            draw = torch.rand(batch, num, device=losses.device)
        else:
            draw = keyed_uniform(seed ^ _DROP_SALT, step, sample_ids, num)
        keep = draw.T >= self.p
        samples = torch.arange(batch, device=losses.device)
        keep[losses.argmax(0), samples] = True
        return keep.to(losses.dtype)
