"""FrozenTeachers: MOMA's pretrained teachers, built, loaded and run frozen."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS
from torch import nn

from .checkpoint import load_pretrained, pop_pretrained
from .config_checks import check_patch_grid
from .speed import TEACHER_DTYPES
from .utils import unshuffle_tokens, vit_forward_layers


#: ``F.interpolate`` modes for teacher features on another patch grid.
RESAMPLE_MODES = ('bilinear', 'bicubic', 'area', 'nearest')


def resample_map(feat: torch.Tensor, size: Tuple[int, int],
                 mode: str = 'bilinear') -> torch.Tensor:
    """Resample a (B, C, h, w) feature map to (B, C, H, W) = ``size``.

    Each output token is interpolated over the token map as a pixel of an
    image would be (``align_corners=False``: token centres sit at the centres
    of their patches, so the two grids cover the same image area).

    Args:
        feat (torch.Tensor): (B, C, h, w).
        size (tuple[int, int]): (H, W).
        mode (str): One of :data:`RESAMPLE_MODES`. Defaults to
            ``'bilinear'``.

    Returns:
        torch.Tensor: (B, C, H, W).
    """
    corners = dict(align_corners=False) if mode in ('bilinear',
                                                     'bicubic') else {}
    return F.interpolate(feat, size=size, mode=mode, **corners)


class FrozenTeachers(nn.ModuleDict):
    """The frozen teachers of MOMA, one entry per teacher name.

    Each teacher is built from its config; a teacher on another patch grid
    than the student's (DINOv2's 14-px patches: 16 x 16 tokens at 224 px
    against a ViT-B/16 student's 14 x 14) has its patch features resampled
    to the student's grid, the class token kept. A ``Pretrained``
    ``init_cfg`` is taken out of the config and
    loaded strictly by :meth:`load_weights`. The teachers never train: no
    parameter requires a gradient, :meth:`train` keeps them in eval mode and
    :meth:`targets` runs them without autograd. A ModuleDict, so that the
    state-dict keys are ``<prefix>.<name>.*``; it has no ``init_weights``,
    so that MMEngine's recursive initialisation leaves it to
    :meth:`load_weights`.

    Args:
        teachers (dict): ``{name: backbone config}``. ViT-family teachers
            give their tokens after each block in ``out_indices`` (one target
            per layer; the deepest is :meth:`targets`); any other MMPretrain
            backbone must return a (B, C, h, w) map.
        patch_resolution (tuple[int, int]): The student's patch grid.
        masked_input (bool): The teachers will see the student's visible
            patches only (an ablation); needs ViT teachers on the student's
            grid. Defaults to False.
        dtype (str, optional): Cast the teachers once to ``'bfloat16'``,
            ``'float16'`` or ``'float32'`` and run them in that dtype with
            autocast off. Defaults to None: the model's dtype and autocast.
        inference_mode (bool): Run under ``torch.inference_mode`` instead of
            ``torch.no_grad``. Defaults to False.
        resample (str, optional): How features on another grid reach the
            student's: an ``F.interpolate`` mode of :data:`RESAMPLE_MODES`
            over the (h, w) token map. Defaults to ``'bilinear'`` (choice:
            RADIO and Theia also interpolate teacher feature maps
            bilinearly). None: every teacher must be on the student's grid.
    """

    def __init__(self,
                 teachers: Dict[str, dict],
                 patch_resolution: Tuple[int, int],
                 masked_input: bool = False,
                 dtype: Optional[str] = None,
                 inference_mode: bool = False,
                 resample: Optional[str] = 'bilinear') -> None:
        super().__init__()
        if dtype is not None and dtype not in TEACHER_DTYPES:
            raise ValueError(
                f'MomaAlgorithm: teacher_dtype={dtype!r} is not supported; '
                f'allowed: None or one of {list(TEACHER_DTYPES)}.')
        if resample is not None and resample not in RESAMPLE_MODES:
            raise ValueError(
                f'MomaAlgorithm: teacher_resample={resample!r} is not '
                f'supported; allowed: None (teachers on the student grid) or '
                f'one of {RESAMPLE_MODES}.')
        self.resample = resample
        self.patch_resolution = tuple(patch_resolution)
        self.num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.masked_input = masked_input
        self.dtype = TEACHER_DTYPES.get(dtype)
        self.inference_mode = bool(inference_mode)
        self._cast = False
        self.inits: Dict[str, Optional[dict]] = {}
        for name, cfg in teachers.items():
            self[name] = self._build(name, cfg)

    def _build(self, name: str, cfg: dict) -> nn.Module:
        cfg = copy.deepcopy(cfg)
        where = f'teachers.{name}'
        if 'img_size' in cfg or 'patch_size' in cfg:
            check_patch_grid(cfg, where)
        self.inits[name] = pop_pretrained(cfg, f'{where}.init_cfg')
        try:
            teacher = MODELS.build(cfg)
        except (KeyError, AssertionError) as err:
            # The registry's KeyError (unknown type) and MMPretrain's arch
            # assertions name neither the teacher nor the config key.
            raise ValueError(
                f'{where} (type={cfg.get("type")!r}) cannot be built: '
                f'{err.args[0] if err.args else err!r}. Allowed: a backbone '
                "registered in MMPretrain, e.g. 'mmpretrain."
                "VisionTransformer' or 'mmpretrain.MoCoV3ViT', with one of "
                'its arch names.') from err
        if isinstance(teacher, VisionTransformer):
            if teacher.cls_token is None:
                raise ValueError(f'{where}: with_cls_token=False is not '
                                 'supported for a ViT teacher.')
            grid = tuple(teacher.patch_resolution)
            if grid != self.patch_resolution and (self.resample is None
                                                  or self.masked_input):
                why = ('with teacher_resample=None'
                       if self.resample is None else
                       'with mask_teacher_input=True (the visible patches are '
                       "the student's)")
                raise ValueError(
                    f'{where}: its patch grid {grid} '
                    f'({where}.img_size={cfg.get("img_size", 224)!r}, '
                    f'{where}.patch_size={cfg.get("patch_size", 16)!r}) '
                    f'differs from the student grid {self.patch_resolution}; '
                    f'{why} teacher and student must use the same img_size '
                    'and patch_size.')
        elif self.masked_input:
            raise ValueError(
                f'MomaAlgorithm: mask_teacher_input=True needs ViT teachers; '
                f'{where} is a {type(teacher).__name__}.')
        teacher.requires_grad_(False)
        teacher.eval()
        return teacher

    def feature_dims(self, name: str) -> int:
        """Feature width Ct of teacher ``name``."""
        teacher = self[name]
        dims = getattr(teacher, 'embed_dims', None)
        if dims is None:
            dims = getattr(teacher, 'out_channels', None)
        if not isinstance(dims, int):
            raise ValueError(
                f'MomaAlgorithm: cannot tell the feature width of teacher '
                f'{name!r} ({type(teacher).__name__}); set '
                'neck.out_channels explicitly.')
        return dims

    def layers(self, name: str) -> List[int]:
        """Block indices of teacher ``name``'s targets, shallowest first
        (``[-1]`` for a non-ViT teacher)."""
        teacher = self[name]
        if not isinstance(teacher, VisionTransformer):
            return [-1]
        return sorted({i % teacher.num_layers for i in teacher.out_indices})

    def has_cls_token(self, name: str) -> bool:
        """Whether teacher ``name`` gives a class-token target (ViTs do)."""
        return isinstance(self[name], VisionTransformer)

    def load_weights(self) -> None:
        """Load each ``Pretrained`` teacher strictly, initialise the others
        (random teachers: tests, ablations), then apply ``dtype``."""
        for name, init_cfg in self.inits.items():
            teacher = self[name]
            if init_cfg is not None:
                load_pretrained(teacher, init_cfg,
                                f'teachers.{name}.init_cfg')
            elif hasattr(teacher, 'init_weights'):
                teacher.init_weights()
        self._cast = False  # loaded (or re-initialised) weights: cast again
        self._apply_dtype()

    def _apply_dtype(self) -> None:
        """Cast the teachers to ``dtype``, once."""
        if self.dtype is None or self._cast:
            return
        self.to(self.dtype)
        self._cast = True

    def train(self, mode: bool = True) -> 'FrozenTeachers':
        """Stay in eval mode whatever ``mode`` is."""
        return super().train(False)

    def targets(self,
                name: str,
                images: torch.Tensor,
                ids_keep: Optional[torch.Tensor] = None,
                ids_restore: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Features of teacher ``name`` on the full token grid, frozen: its
        deepest layer of :meth:`outputs`.

        Returns:
            torch.Tensor: (B, 1 + L, Ct) float32, the class token first.
        """
        return self.outputs(name, images, ids_keep, ids_restore)[0][-1]

    def outputs(
        self,
        name: str,
        images: torch.Tensor,
        ids_keep: Optional[torch.Tensor] = None,
        ids_restore: Optional[torch.Tensor] = None,
        attention: bool = False
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """Features of teacher ``name`` at each of its :meth:`layers`.

        The teacher runs once, under ``torch.no_grad`` (or
        ``torch.inference_mode``); with ``dtype``, in that dtype with
        autocast off.

        Args:
            name (str): The teacher.
            images (torch.Tensor): (B, 3, H, W), the original images.
            ids_keep (torch.Tensor, optional): (B, Lk) visible patches, with
                ``masked_input`` only: the teacher sees just these.
                Defaults to None.
            ids_restore (torch.Tensor, optional): (B, L), with ``ids_keep``.
                Defaults to None.
            attention (bool): Also return the class token's attention over
                the patches in the deepest target block (ViT teachers on the
                full image). Defaults to False.

        Returns:
            tuple: a list of (B, 1 + L, Ct) float32, one per layer, the class
            token first, zeros where the teacher gives no feature (the class
            token of a non-ViT teacher, hidden patches with
            ``masked_input``); and the (B, L) float32 attention on the
            student's grid, summing to at most 1 per sample, or None.
        """
        if attention and not (self.has_cls_token(name) and ids_keep is None):
            masked = ' with masked input' if ids_keep is not None else ''
            raise ValueError(
                f'MomaAlgorithm: attention-guided masking needs a ViT teacher '
                f'that sees the full image; teacher {name!r} is a '
                f'{type(self[name]).__name__}{masked}.')
        grad_off = (torch.inference_mode
                    if self.inference_mode else torch.no_grad)
        if self.dtype is None:
            with grad_off():
                feats, attn = self._features(name, images, ids_keep,
                                             ids_restore, attention)
        else:
            self._apply_dtype()  # outside inference mode
            # Autocast would recast the teacher weights on every op.
            with grad_off(), torch.autocast(
                    images.device.type, enabled=False):
                feats, attn = self._features(name, images.to(self.dtype),
                                             ids_keep, ids_restore, attention)
        # Inference tensors cannot be saved for backward (the head's
        # target_norm='none') outside inference mode: ordinary tensors.
        feats = [f.float() for f in feats]
        feats = [f.clone() if f.is_inference() else f for f in feats]
        if attn is not None:
            attn = attn.float()
            attn = attn.clone() if attn.is_inference() else attn
        return feats, attn

    def _features(
        self, name: str, images: torch.Tensor,
        ids_keep: Optional[torch.Tensor], ids_restore: Optional[torch.Tensor],
        attention: bool
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        teacher = self[name]
        if isinstance(teacher, VisionTransformer):
            feats, attn = vit_forward_layers(teacher, images, ids_keep,
                                             self.layers(name), attention)
            if ids_keep is not None:  # on the student grid (checked)
                return [
                    unshuffle_tokens(f, ids_restore, f.new_zeros(1, 1, 1))
                    for f in feats
                ], None
            stride = teacher.patch_embed.projection.stride
            grid = (images.shape[-2] // stride[0],
                    images.shape[-1] // stride[1])
            if grid == self.patch_resolution:
                return feats, attn
            if attn is not None:  # (B, h * w) -> (B, L), mass kept
                attn = self._to_student_grid(name, attn.unflatten(
                    1, grid)[:, None]).flatten(1) * (
                        grid[0] * grid[1] / self.num_patches)
            return [self._regrid_tokens(name, f, grid) for f in feats], attn
        feat = teacher(images)
        feat = feat[-1] if isinstance(feat, (tuple, list)) else feat
        if feat.dim() != 4:
            raise RuntimeError(
                f'MomaAlgorithm: teacher {name!r} returned features of shape '
                f'{tuple(feat.shape)}; a non-ViT teacher must return a '
                '(B, C, h, w) map.')
        tokens = self._to_student_grid(name, feat).flatten(2).transpose(1, 2)
        cls = tokens.new_zeros(tokens.shape[0], 1, tokens.shape[2])
        return [torch.cat([cls, tokens], dim=1)], None  # (B, 1 + L, C)

    def _regrid_tokens(self, name: str, tokens: torch.Tensor,
                       grid: Tuple[int, int]) -> torch.Tensor:
        """(B, 1 + h * w, C) on the teacher's grid -> (B, 1 + L, C)."""
        patches = tokens[:, 1:].transpose(1, 2).unflatten(2, grid)
        patches = self._to_student_grid(name, patches)  # (B, C, H, W)
        return torch.cat(
            [tokens[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)

    def _to_student_grid(self, name: str,
                         feat: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) teacher map -> (B, C, H, W) on the student grid."""
        size = self.patch_resolution
        if tuple(feat.shape[2:]) == size:
            return feat
        if self.resample is None:
            raise RuntimeError(
                f'MomaAlgorithm: teacher {name!r} gives a '
                f'{tuple(feat.shape[2:])} feature map, but the student grid '
                f'is {size} and teacher_resample=None; set teacher_resample '
                f'to one of {RESAMPLE_MODES}.')
        return resample_map(feat, size, self.resample)


def keep_out_of_checkpoints(owner: nn.Module, attr: str = 'teachers') -> None:
    """Leave ``owner.<attr>.*`` out of ``owner``'s state dicts.

    A saved checkpoint then holds no teacher weights (they are rebuilt from
    their ``init_cfg``), and loading such a checkpoint does not report the
    teacher keys as missing. A state dict of the teachers module itself
    (``owner.teachers.state_dict()``) is complete.

    Args:
        owner (nn.Module): The model holding the teachers.
        attr (str): Its attribute name. Defaults to ``'teachers'``.
    """

    def drop(module, state_dict, prefix, local_metadata) -> None:
        for key in [k for k in state_dict if k.startswith(f'{prefix}{attr}.')]:
            del state_dict[key]

    def allow_missing(module, incompatible_keys) -> None:
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if f'.{attr}.' not in f'.{k}']

    owner._register_state_dict_hook(drop)
    owner.register_load_state_dict_post_hook(allow_missing)
