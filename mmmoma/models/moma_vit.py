"""MomaViT: MMPretrain's ViT for evaluating a MOMA student downstream."""
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import load_state_dict
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from .checkpoint import is_pretrained_cfg, read_state_dict

_LAYER = re.compile(r'^layers\.(\d+)\.')
# Keys that every student checkpoint must provide: a missing or mis-shaped
# one means the checkpoint holds another architecture.
_CORE = re.compile(r'^(cls_token|pos_embed|patch_embed\.|layers\.)')


def _launch_hint(where: str) -> str:
    return (f'Give the student at launch: --cfg-options {where}.checkpoint='
            'PATH, with PATH a MOMA pretraining checkpoint (work_dir/'
            'epoch_N.pth) or the output of tools/model_converters/'
            f'extract_student.py; set {where}=None for a random student.')


@MODELS.register_module()
class MomaViT(VisionTransformer):
    """MMPretrain's VisionTransformer for transferring a MOMA student.

    The student of `MOMA <https://arxiv.org/abs/2302.02089>`_ is trained as
    an ``MAEViT``, whose parameter names are those of ``VisionTransformer``;
    this class is ``VisionTransformer`` itself (same arguments, parameters
    and outputs, so MMPretrain's and MMSegmentation's recipes apply
    unchanged) with the checks a transfer run needs:

    - ``out_indices`` and ``frozen_stages`` are checked against the depth of
      ``arch`` when the model is built, with a message that names the
      allowed range (``VisionTransformer`` asserts ``Invalid out_indices``
      and silently accepts ``out_indices=num_layers``);
    - a ``Pretrained`` ``init_cfg`` is loaded from a MOMA checkpoint
      directly (``prefix='backbone.'``, read with ``weights_only=True``),
      and an empty path, a checkpoint without weights under the prefix, or
      one of another architecture (mis-shaped, missing or surplus blocks)
      fails with the config key instead of leaving weights random. Keys
      that the downstream recipe adds or drops (``ln1`` with
      ``final_norm=False``, ``ln2`` of ``avg_featmap``) are only logged.
      ``pos_embed`` is resized to ``img_size`` on load;
    - frozen stages stay in eval mode when the runner calls ``train()``
      (a linear probe's backbone is then the evaluated model exactly).

    Args:
        arch (str | dict): As ``VisionTransformer``. Defaults to 'base'.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned,
            within ``[-depth, depth)``. Defaults to -1.
        frozen_stages (int): Blocks to freeze, within ``[-1, depth]``.
            Defaults to -1.
        init_cfg (dict, optional): Usually ``dict(type='Pretrained',
            checkpoint=MOMA_CKPT, prefix='backbone.')``. Defaults to None.
        **kwargs: The other arguments of ``VisionTransformer``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        depth = self._depth(arch)
        indices = ([out_indices] if isinstance(out_indices, int) else
                   list(out_indices))
        bad = [i for i in indices
               if not isinstance(i, int) or not -depth <= i < depth]
        if bad or not indices:
            raise ValueError(
                f'MomaViT: out_indices={out_indices!r} does not fit the '
                f'student: arch={arch!r} has {depth} blocks, so allowed '
                f'indices are 0..{depth - 1} (or -{depth}..-1); '
                f'{bad or "an empty list"} is outside. UperNet takes 4, '
                f'e.g. {self._spread(depth)} for this depth.')
        if not (isinstance(frozen_stages, int)
                and -1 <= frozen_stages <= depth):
            raise ValueError(
                f'MomaViT: frozen_stages={frozen_stages!r} does not fit the '
                f'student: arch={arch!r} has {depth} blocks; allowed: -1 '
                f'(train all) to {depth} (linear probe: freeze all).')
        super().__init__(
            arch=arch,
            out_indices=indices,
            frozen_stages=frozen_stages,
            init_cfg=init_cfg,
            **kwargs)

    def train(self, mode: bool = True) -> 'MomaViT':
        """Set the mode; frozen stages (``frozen_stages``) stay in eval
        mode, which ``VisionTransformer`` sets only once, when built."""
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
            if self.frozen_stages == self.num_layers:  # all frozen
                super().train(False)
        return self

    def _depth(self, arch: Union[str, dict]) -> int:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'MomaViT: arch={arch!r} is unknown; '
                                 f'allowed: {sorted(self.arch_zoo)} or a '
                                 'dict with embed_dims, num_layers, '
                                 'num_heads, feedforward_channels.')
            return self.arch_zoo[arch.lower()]['num_layers']
        if not isinstance(arch, dict) or not isinstance(
                arch.get('num_layers'), int):
            raise ValueError(
                f'MomaViT: arch={arch!r} must be a name or a dict with '
                'embed_dims, num_layers, num_heads, feedforward_channels.')
        return arch['num_layers']

    @staticmethod
    def _spread(depth: int) -> List[int]:
        """Four block indices evenly spread over ``depth`` blocks."""
        return sorted({max(round(depth * k / 4) - 1, 0) for k in range(1, 5)})

    def init_weights(self) -> None:
        """Random init, then the checked load of a ``Pretrained`` student."""
        if not is_pretrained_cfg(self.init_cfg):
            super().init_weights()
            return
        where = 'model.backbone.init_cfg'  # in a classifier or segmentor
        state = read_state_dict(self.init_cfg, where, _launch_hint(where))
        self._check_fits(state, where)
        # MMEngine's order: everything else first, the checkpoint last.
        init_cfg, self.init_cfg = self.init_cfg, None
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        print_log(f'MomaViT: student weights from {init_cfg["checkpoint"]} '
                  f'(prefix {init_cfg.get("prefix", "")!r})',
                  logger='current')
        load_state_dict(self, state, strict=False, logger='current')

    def _check_fits(self, state: Dict[str, torch.Tensor], where: str) -> None:
        own = self.state_dict()
        mis_shaped = [
            f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state.items() if k in own and k != 'pos_embed'
            and tuple(v.shape) != tuple(own[k].shape)
        ]
        missing = [k for k in own if _CORE.match(k) and k not in state]
        surplus = [k for k in state
                   if _LAYER.match(k) and k not in own]
        if not (mis_shaped or missing or surplus):
            return
        blocks = {int(m.group(1)) for m in map(_LAYER.match, state) if m}
        lines = [
            f'{where}.checkpoint={self.init_cfg["checkpoint"]!r} holds '
            f'another student ({len(blocks)} blocks) than this backbone '
            f'({self.num_layers} blocks, {self.embed_dims}-d); pick the '
            'config of that student (arch) or its checkpoint:'
        ]
        for title, keys in (('mis-shaped', mis_shaped), ('missing', missing),
                            ('surplus', surplus)):
            if keys:
                more = f' (+{len(keys) - 4} more)' if len(keys) > 4 else ''
                lines.append(f'  {title}: {"; ".join(keys[:4])}{more}')
        raise ValueError('\n'.join(lines))
