"""Layer-wise learning-rate decay for a ViT backbone inside any model."""
import re
from collections import OrderedDict
from typing import List, Tuple

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS as PRETRAIN_CONSTRUCTORS)
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG_CONSTRUCTORS
from torch import nn

# Before the first block: the stem of the ViT.
_STEM = re.compile(r'^(cls_token|dist_token|mask_token|pos_embed|'
                   r'patch_embed\.|pre_norm\.)')
_BLOCK = re.compile(r'^layers\.(\d+)\.')


@SEG_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay (BEiT, MAE) for an MMPretrain ViT in any model.

    MMSegmentation's ``LearningRateDecayOptimizerConstructor`` only accepts
    backbones whose class name contains ``BEiT``, ``MAE`` or ``ConvNeXt``;
    MMPretrain's ``LearningRateDecayOptimWrapperConstructor`` needs a
    ``get_layer_depth`` method on the model, which ``EncoderDecoder`` lacks.
    This one finds the ViT at ``paramwise_cfg.backbone`` (``'backbone'`` in
    an ``EncoderDecoder`` and in an ``ImageClassifier``) and gives every
    trainable parameter a depth ``d`` in ``0..L+1`` for a ViT of ``L``
    blocks:

    - ``d = 0``: the stem, ``cls_token``, ``pos_embed``, ``patch_embed``,
      ``pre_norm`` (and ``dist_token``, ``mask_token`` when present);
    - ``d = i + 1``: block ``layers.i``;
    - ``d = L + 1``: the rest of the backbone (its final norms) and every
      parameter outside it (neck, decode and auxiliary heads).

    Its learning rate is ``lr * layer_decay_rate ** (L + 1 - d)``: the heads
    get the base lr, the last block ``rate`` times it, the stem
    ``rate ** (L + 1)`` times it, as MMPretrain's classifier constructor
    does. Weight decay follows the other ``paramwise_cfg`` keys exactly as
    MMEngine's :class:`DefaultOptimWrapperConstructor` (``custom_keys``,
    ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``, ...);
    an ``lr_mult`` there multiplies the decayed rate. Parameters with the
    same depth and settings share one group, which records ``layer_id``,
    ``lr_scale`` and ``param_names``. Frozen parameters are left out.

    ``paramwise_cfg`` keys of its own:

    - ``layer_decay_rate`` (float): required, in ``(0, 1]``.
    - ``backbone`` (str): dotted path of the ViT in the model. Defaults to
      ``'backbone'``; an empty string means the model itself.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(
                layer_decay_rate=0.65,
                norm_decay_mult=0.0,
                bias_decay_mult=0.0,
                custom_keys={'pos_embed': dict(decay_mult=0.0),
                             'cls_token': dict(decay_mult=0.0)}))
    """

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        rate = self.paramwise_cfg.get('layer_decay_rate')
        if isinstance(rate, bool) or not isinstance(
                rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: paramwise_cfg.'
                f'layer_decay_rate={rate!r}; allowed: a number in (0, 1] '
                '(1 turns the decay off; MAE fine-tunes ViT-B with 0.65).')
        path = self.paramwise_cfg.get('backbone', 'backbone')
        if not isinstance(path, str):
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: paramwise_cfg.backbone='
                f'{path!r}; allowed: the dotted attribute path of the ViT in '
                "the model, e.g. 'backbone', or '' for the model itself.")
        if self.base_lr is None:
            raise ValueError('LayerDecayOptimWrapperConstructor: '
                             'optim_wrapper.optimizer.lr is required.')

    def find_backbone(self, model: nn.Module) -> Tuple[str, nn.Module]:
        """The ViT at ``paramwise_cfg.backbone`` and its name prefix."""
        path = self.paramwise_cfg.get('backbone', 'backbone')
        module = model
        for part in filter(None, path.split('.')):
            module = getattr(module, part, None)
        if not isinstance(module, VisionTransformer):
            found = type(module).__name__ if module is not None else 'nothing'
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: paramwise_cfg.backbone='
                f'{path!r} is {found} in {type(model).__name__}; allowed: '
                'the path of an MMPretrain VisionTransformer (MomaViT, '
                'VisionTransformer, MAEViT, ...).')
        return (path + '.' if path else ''), module

    def layer_depth(self, name: str, prefix: str,
                    num_layers: int) -> int:
        """Depth ``d`` of parameter ``name`` (see the class docstring)."""
        if not name.startswith(prefix):
            return num_layers + 1
        local = name[len(prefix):]
        if _STEM.match(local):
            return 0
        block = _BLOCK.match(local)
        if block:
            return int(block.group(1)) + 1
        return num_layers + 1

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   **kwargs) -> None:
        """Fill ``params`` with one group per (depth, settings) of ``module``.

        Args:
            params (list[dict]): The param groups, extended in place.
            module (nn.Module): The whole model; MMEngine's recursion into
                its children (``prefix`` set) takes the default path.
            prefix (str): The child's name in the recursion. Defaults to ''.
        """
        if prefix:
            super().add_params(params, module, prefix=prefix, **kwargs)
            return
        prefix, vit = self.find_backbone(module)
        num_layers = len(vit.layers)
        rate = float(self.paramwise_cfg['layer_decay_rate'])
        names = {id(p): n for n, p in module.named_parameters()}
        single: List[dict] = []
        # MMEngine's weight-decay rules, one group per parameter.
        super().add_params(single, module)
        groups: 'OrderedDict[tuple, dict]' = OrderedDict()
        for group in single:
            (param, ) = group.pop('params')
            name = names[id(param)]
            depth = self.layer_depth(name, prefix, num_layers)
            scale = rate**(num_layers + 1 - depth)
            group['lr'] = group.get('lr', self.base_lr) * scale
            key = (depth, tuple(sorted(group.items())))
            if key not in groups:
                groups[key] = dict(
                    params=[], param_names=[], layer_id=depth,
                    lr_scale=scale, **group)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        params.extend(groups.values())
        scales = {g['layer_id']: g['lr_scale'] for g in groups.values()}
        summary = ', '.join(f'{d}: x{scales[d]:.3g}' for d in sorted(scales))
        print_log(
            f'LayerDecayOptimWrapperConstructor: {num_layers} blocks at '
            f'{prefix or "<model>"}, rate {rate}, {len(groups)} groups; '
            f'lr scale by depth {summary}', logger='current')


# MMPretrain configs can name it too (its classifiers already have
# LearningRateDecayOptimWrapperConstructor; this one gives the same rates).
PRETRAIN_CONSTRUCTORS.register_module(module=LayerDecayOptimWrapperConstructor)
