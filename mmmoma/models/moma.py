"""MomaAlgorithm: distil frozen teachers into a masked student ViT."""
import copy
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.model import ModuleDict
from mmpretrain.models import BaseSelfSupervisor, VisionTransformer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from .checkpoint import load_pretrained, pop_pretrained
from .utils import (keyed_token_noise, num_visible_tokens, random_token_mask,
                    unshuffle_tokens, vit_forward_tokens)


def _per_teacher(cfg: dict, names: List[str], key: str) -> Dict[str, dict]:
    """Expand a shared module config (has ``type``) or check a per-name one."""
    if 'type' in cfg:
        return {name: copy.deepcopy(cfg) for name in names}
    if set(cfg) != set(names):
        raise ValueError(
            f'MomaAlgorithm: {key} must be one config with a "type" (shared '
            f'by all teachers) or one config per teacher {sorted(names)}; '
            f'got keys {sorted(cfg)}.')
    return {name: copy.deepcopy(cfg[name]) for name in names}


def _check_patch_grid(cfg: dict, where: str) -> None:
    img_size = cfg.get('img_size', 224)
    patch_size = cfg.get('patch_size', 16)
    if not (isinstance(patch_size, int) and patch_size > 0):
        raise ValueError(f'{where}.patch_size={patch_size!r} must be a '
                         'positive int.')
    sizes = img_size if isinstance(img_size, (tuple, list)) else (img_size, )
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f'{where}.img_size={img_size!r} must be a positive '
                         'int or a pair of them.')
    if any(s % patch_size for s in sizes):
        raise ValueError(
            f'{where}.img_size={img_size!r} is not divisible by '
            f'{where}.patch_size={patch_size!r}; use an image size that is a '
            'multiple of the patch size.')


# Speed options of MomaAlgorithm (see its docstring).
TEACHER_DTYPES = {
    'float32': torch.float32,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16
}
COMPILE_PARTS = ('teachers', 'backbone', 'necks', 'heads')


@MODELS.register_module()
class MomaAlgorithm(BaseSelfSupervisor):
    """MOMA: distil pretrained MoCo v3 / MAE teachers into one student.

    Implementation of `MOMA: Distill from
    Self-Supervised Teachers <https://arxiv.org/abs/2302.02089>`_. Frozen
    teachers see the original image; the student sees only the visible
    ``1 - mask_ratio`` of its patches; one :class:`MomaNeck` per teacher
    projects the student tokens to that teacher's feature space and one
    :class:`SmoothL1AlignHead` per teacher aligns them with the normalised
    teacher features. The loss is the weighted sum over teachers.

    A sample's mask depends only on ``(mask_seed, mask_step, sample_idx)``
    (buffers, saved in checkpoints; see
    :func:`~mmmoma.models.utils.keyed_token_noise`), not on the process or
    batch it lands in: N processes train exactly like one with an N times
    larger batch, and a resumed run redraws the same masks.

    Args:
        backbone (dict): The student, an MMPretrain ViT (``MAEViT`` by
            default in the configs). Its ``init_cfg`` may be a
            ``Pretrained`` checkpoint (MoCo v3 -> MAE-initialised student and
            MAE -> MoCo-v3-initialised student), loaded strictly.
        teachers (dict): ``{name: backbone config}``. ViT-family teachers
            give their tokens after ``out_indices[-1]``; any other MMPretrain
            backbone must return a (B, C, h, w) map on the student's grid.
            A ``Pretrained`` ``init_cfg`` is loaded strictly by
            :meth:`init_weights`.
        neck (dict): A :class:`MomaNeck` config shared by all teachers, or
            ``{name: config}``. ``in_channels``, ``out_channels`` and
            ``patch_resolution`` are filled in when absent and checked when
            present.
        head (dict): A :class:`SmoothL1AlignHead` config, shared or per
            teacher, like ``neck``.
        mask_ratio (float): Fraction of student patches hidden, in (0, 1).
            Defaults to 0.9.
        loss_weights (dict, optional): ``{name: weight}``; teachers not named
            get 0. Defaults to None: the average over teachers.
        mask_teacher_input (bool): Ablation: teachers see the same visible
            patches as the student (token dropping), so targets exist only
            at visible positions. Defaults to False.
        save_teachers (bool): Keep teacher weights in saved checkpoints.
            Defaults to False: they are rebuilt from their ``init_cfg``.
        teacher_dtype (str, optional): Speed: cast the frozen teachers once
            (after :meth:`init_weights`) to ``'bfloat16'``, ``'float16'`` or
            ``'float32'`` and run them in that dtype with autocast off, so
            that no step recasts their weights; targets are returned as
            float32. bf16 targets differ from float32 ones by rounding
            (relative 1e-3 to 1e-2). Defaults to None: the teachers follow
            the model's dtype and the surrounding autocast.
        teacher_inference_mode (bool): Speed: run the teachers under
            ``torch.inference_mode`` instead of ``torch.no_grad`` (less
            autograd bookkeeping; identical numbers). Defaults to False.
        teacher_cache (dict, optional): Speed, for small datasets with a
            deterministic train pipeline: keep each sample's teacher targets
            (keyed by ``sample_idx``) after its first step and reuse them,
            so that from the second epoch on the teachers do not run. Keys:
            ``size`` (int, required: at least the dataset length; memory is
            ``size x (1 + L) x Ct`` per teacher), ``dtype`` (storage,
            ``'float32'`` (default, targets identical to recomputed ones),
            ``'bfloat16'`` or ``'float16'``). Every step checks a
            fingerprint of each cached sample's input and raises if it
            changed (a random transform in the pipeline). Costs one host
            sync per step; each process keeps its own cache; not kept in
            checkpoints (a resumed run refills it). Not with
            ``mask_teacher_input``. Defaults to None (teachers run every
            step, as MOMA does on ImageNet).
        compile (bool | dict): Speed: ``torch.compile`` the transformer
            blocks of the teachers and the student one by one (blocks of one
            shape share a graph), each neck and each head's loss. ``True``,
            or a dict of ``torch.compile`` arguments plus ``parts``, a subset
            of ``('teachers', 'backbone', 'necks', 'heads')``; ``dynamic``
            defaults to False. Defaults to False.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialization config of the whole model.
            Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 teachers: Dict[str, dict],
                 neck: dict,
                 head: dict,
                 mask_ratio: float = 0.9,
                 loss_weights: Optional[Dict[str, float]] = None,
                 mask_teacher_input: bool = False,
                 save_teachers: bool = False,
                 teacher_dtype: Optional[str] = None,
                 teacher_inference_mode: bool = False,
                 compile: Union[bool, dict] = False,
                 teacher_cache: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not teachers:
            raise ValueError(
                f'MomaAlgorithm: teachers is empty (teachers={teachers!r}); '
                "configure at least one, e.g. teachers=dict(mae=dict(type="
                "'mmpretrain.VisionTransformer', arch='b', init_cfg=...)).")
        if not (isinstance(mask_ratio, (int, float)) and 0 < mask_ratio < 1):
            raise ValueError(f'MomaAlgorithm: mask_ratio={mask_ratio!r} must '
                             'be a number in the open interval (0, 1).')
        names = list(teachers)
        loss_weights = self._check_loss_weights(loss_weights, names)
        backbone = copy.deepcopy(backbone)
        _check_patch_grid(backbone, 'backbone')
        student_init = pop_pretrained(backbone, 'backbone.init_cfg')
        super().__init__(
            backbone=backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not isinstance(self.backbone, VisionTransformer):
            raise TypeError(
                'MomaAlgorithm: backbone must be an MMPretrain ViT (e.g. '
                f"'mmpretrain.MAEViT'); got {type(self.backbone).__name__}.")
        frozen = [
            n for n, p in self.backbone.named_parameters()
            if not p.requires_grad and n != 'pos_embed'
        ]
        if frozen:
            raise ValueError(
                f'MomaAlgorithm: student parameters {frozen[:4]} are frozen '
                '(stop_grad_conv1 / frozen_stages); MOMA trains the whole '
                'student, patch embedding included.')
        self.mask_ratio = float(mask_ratio)
        if hasattr(self.backbone, 'mask_ratio'):
            self.backbone.mask_ratio = self.mask_ratio
        self.patch_resolution = tuple(self.backbone.patch_resolution)
        self.num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        if num_visible_tokens(self.num_patches, mask_ratio) < 1:
            raise ValueError(
                f'MomaAlgorithm: mask_ratio={mask_ratio!r} leaves no visible '
                f'patch out of {self.num_patches}; use a ratio below '
                f'{1 - 1 / self.num_patches:.4f}.')
        self.mask_teacher_input = mask_teacher_input
        # Masks are keyed by (mask_seed, mask_step, sample index), not drawn
        # from the process's generator: see keyed_token_noise. Buffers, so
        # that checkpoints carry them and a resumed run redraws the same
        # masks; the seed comes from the global generator (Runner's seed).
        self.register_buffer(
            'mask_seed', torch.randint(1 << 62, ()), persistent=True)
        self.register_buffer(
            'mask_step', torch.zeros((), dtype=torch.int64), persistent=True)
        self.save_teachers = save_teachers
        self.loss_weights = loss_weights
        self.student_init = student_init

        # A plain ModuleDict: BaseModule.init_weights does not recurse into
        # it; init_weights below initialises or loads each teacher once.
        self.teachers = nn.ModuleDict()
        self.teacher_inits: Dict[str, Optional[dict]] = {}
        for name, cfg in teachers.items():
            self.teachers[name] = self._build_teacher(name, cfg)

        neck_cfgs = _per_teacher(neck, names, 'neck')
        head_cfgs = _per_teacher(head, names, 'head')
        # MMEngine's ModuleDict, so that init_weights reaches them.
        self.necks = ModuleDict()
        self.heads = ModuleDict()
        student_dims = self.backbone.embed_dims
        for name in names:
            width = self.teacher_dims(name)
            ncfg = neck_cfgs[name]
            for key, value in (('in_channels', student_dims),
                               ('out_channels', width),
                               ('patch_resolution', self.patch_resolution)):
                given = ncfg.setdefault(key, value)
                if key == 'patch_resolution' and isinstance(given, int):
                    given = (given, given)
                if (tuple(given) if key == 'patch_resolution' else given) \
                        != value:
                    owner = 'teacher' if key == 'out_channels' else 'student'
                    raise ValueError(
                        f'MomaAlgorithm: neck for teacher {name!r} has '
                        f'{key}={given!r}, but the {owner} needs {value!r}; '
                        f'remove it or set it to {value!r}.')
            self.necks[name] = MODELS.build(ncfg)
            self.heads[name] = MODELS.build(head_cfgs[name])
            self._check_positions(name)

        self._register_state_dict_hook(self._drop_teacher_weights)
        self.register_load_state_dict_post_hook(self._allow_missing_teachers)
        self._setup_speed(teacher_dtype, teacher_inference_mode, compile)
        self._setup_cache(teacher_cache)

    # ------------------------------------------------------------ building
    @staticmethod
    def _check_loss_weights(weights: Optional[Dict[str, float]],
                            names: List[str]) -> Dict[str, float]:
        if weights is None:
            return {name: 1.0 / len(names) for name in names}
        unknown = [k for k in weights if k not in names]
        if unknown:
            raise ValueError(
                f'MomaAlgorithm: loss_weights names unknown teacher(s) '
                f'{unknown}; configured teachers: {names}.')
        bad = {
            k: v
            for k, v in weights.items()
            if not (isinstance(v, (int, float)) and v >= 0)
        }
        if bad or not sum(weights.values()) > 0:
            raise ValueError(
                f'MomaAlgorithm: loss_weights={dict(weights)!r} must be >= 0 '
                'with a positive sum.')
        return {name: float(weights.get(name, 0.0)) for name in names}

    def _build_teacher(self, name: str, cfg: dict) -> nn.Module:
        cfg = copy.deepcopy(cfg)
        where = f'teachers.{name}'
        if 'img_size' in cfg or 'patch_size' in cfg:
            _check_patch_grid(cfg, where)
        self.teacher_inits[name] = pop_pretrained(cfg, f'{where}.init_cfg')
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
            if tuple(teacher.patch_resolution) != self.patch_resolution:
                raise ValueError(
                    f'{where}: its patch grid {teacher.patch_resolution} '
                    f'({where}.img_size={cfg.get("img_size", 224)!r}, '
                    f'{where}.patch_size={cfg.get("patch_size", 16)!r}) '
                    f'differs from the student grid {self.patch_resolution}; '
                    'teacher and student must use the same img_size and '
                    'patch_size.')
        elif self.mask_teacher_input:
            raise ValueError(
                f'MomaAlgorithm: mask_teacher_input=True needs ViT teachers; '
                f'{where} is a {type(teacher).__name__}.')
        teacher.requires_grad_(False)
        teacher.eval()
        return teacher

    def teacher_dims(self, name: str) -> int:
        """Feature width Ct of teacher ``name``."""
        teacher = self.teachers[name]
        dims = getattr(teacher, 'embed_dims', None)
        if dims is None:
            dims = getattr(teacher, 'out_channels', None)
        if not isinstance(dims, int):
            raise ValueError(
                f'MomaAlgorithm: cannot tell the feature width of teacher '
                f'{name!r} ({type(teacher).__name__}); set '
                'neck.out_channels explicitly.')
        return dims

    def _check_positions(self, name: str) -> None:
        head = self.heads[name]
        positions = getattr(head, 'positions', 'all')
        if positions != 'masked':
            return
        if not self.necks[name].predicts_masked:
            raise ValueError(
                f"MomaAlgorithm: head for teacher {name!r} uses "
                f"positions='masked' but its neck (mode="
                f"{self.necks[name].mode!r}) predicts visible tokens only; "
                "use neck mode='decoder' or positions 'visible'/'all'.")
        if self.mask_teacher_input:
            raise ValueError(
                "MomaAlgorithm: positions='masked' has no targets with "
                'mask_teacher_input=True (teachers only see visible '
                "patches); use positions 'visible' or 'all'.")

    # ------------------------------------------------------------ speed
    def _setup_speed(self, teacher_dtype: Optional[str],
                     teacher_inference_mode: bool,
                     compile: Union[bool, dict]) -> None:
        if teacher_dtype is not None and teacher_dtype not in TEACHER_DTYPES:
            raise ValueError(
                f'MomaAlgorithm: teacher_dtype={teacher_dtype!r} is not '
                f'supported; allowed: None or one of {list(TEACHER_DTYPES)}.')
        self.teacher_dtype = TEACHER_DTYPES.get(teacher_dtype)
        self.teacher_inference_mode = bool(teacher_inference_mode)
        self._teachers_cast = False
        self._head_losses = {}  # name -> compiled head.loss
        self.compile_cfg = None
        if compile is False or compile is None:
            return
        if not isinstance(compile, (bool, dict)):
            raise ValueError(
                f'MomaAlgorithm: compile={compile!r} must be a bool or a dict '
                'of torch.compile arguments (with optional parts).')
        kwargs = {} if compile is True else dict(compile)
        parts = kwargs.pop('parts', COMPILE_PARTS)
        parts = (parts, ) if isinstance(parts, str) else tuple(parts)
        unknown = [p for p in parts if p not in COMPILE_PARTS]
        if unknown or not parts:
            raise ValueError(
                f'MomaAlgorithm: compile parts={parts!r} must be a non-empty '
                f'subset of {COMPILE_PARTS}.')
        # A block kind sees several token counts (197 in a teacher, 20 in
        # the student): one static graph each, not a dynamic-shape one.
        kwargs.setdefault('dynamic', False)
        self.compile_cfg = dict(parts=parts, **kwargs)
        for module in self.modules():
            # MMPretrain's ViTs give DropPath numpy rates (np.linspace);
            # dynamo makes tensors of them whose guards fail under
            # inference mode. The same value as a Python float.
            if isinstance(getattr(module, 'drop_prob', None), np.generic):
                module.drop_prob = float(module.drop_prob)
        for part in parts:
            if part == 'heads':
                self._head_losses = {
                    name: torch.compile(head.loss, **kwargs)
                    for name, head in self.heads.items()
                }
            elif part == 'necks':
                for neck in self.necks.values():
                    neck.compile(**kwargs)
            else:
                nets = self.teachers.values() if part == 'teachers' \
                    else [self.backbone]
                for net in nets:  # ViT blocks, or a non-ViT teacher whole
                    for block in getattr(net, 'layers', None) or [net]:
                        block.compile(**kwargs)

    def _setup_cache(self, cfg: Optional[dict]) -> None:
        self.cache_cfg = None
        self._cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        self._cache_filled: Optional[torch.Tensor] = None
        self._cache_print: Optional[torch.Tensor] = None
        self._cache_hit_logged = False
        if cfg is None:
            return
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
        if self.mask_teacher_input:
            raise ValueError(
                'MomaAlgorithm: teacher_cache needs targets that do not '
                'depend on the mask, but mask_teacher_input=True; set '
                'teacher_cache=None for that ablation.')
        self.cache_cfg = dict(size=size, dtype=TEACHER_DTYPES[dtype])

    def _apply_teacher_dtype(self) -> None:
        """Cast the frozen teachers to ``teacher_dtype``, once."""
        if self.teacher_dtype is None or self._teachers_cast:
            return
        self.teachers.to(self.teacher_dtype)
        self._teachers_cast = True

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Random init, then strict loads of the teachers and the student."""
        super().init_weights()
        for name, init_cfg in self.teacher_inits.items():
            teacher = self.teachers[name]
            if init_cfg is not None:
                load_pretrained(teacher, init_cfg,
                                f'teachers.{name}.init_cfg')
            elif hasattr(teacher, 'init_weights'):
                teacher.init_weights()  # random teacher: tests, ablations
        if self.student_init is not None:
            load_pretrained(self.backbone, self.student_init,
                            'backbone.init_cfg')
        # Loaded (or re-initialised) weights: cast them again.
        self._teachers_cast = False
        self._apply_teacher_dtype()

    def _drop_teacher_weights(self, module, state_dict, prefix, *args):
        if self.save_teachers:
            return
        teachers = prefix + 'teachers.'
        for key in [k for k in state_dict if k.startswith(teachers)]:
            del state_dict[key]

    def _allow_missing_teachers(self, module, incompatible_keys) -> None:
        if self.save_teachers:
            return
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if '.teachers.' not in f'.{k}']

    def train(self, mode: bool = True) -> 'MomaAlgorithm':
        """Set train mode; the teachers always stay in eval mode."""
        super().train(mode)
        self.teachers.eval()
        return self

    # ------------------------------------------------------------ forward
    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """Student features of unmasked images (the backbone's out_type)."""
        return self.backbone(inputs, mask=None) \
            if hasattr(self.backbone, 'random_masking') \
            else self.backbone(inputs)

    def teacher_targets(
            self, name: str, images: torch.Tensor,
            ids_keep: torch.Tensor,
            ids_restore: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of teacher ``name`` on the full token grid.

        The teacher runs once, without autograd: under ``torch.no_grad``, or
        ``torch.inference_mode`` with ``teacher_inference_mode``; with
        ``teacher_dtype``, in that dtype and with autocast off.

        Returns:
            tuple: ``target`` (B, 1 + L, Ct) float32 and ``valid``
            (B, 1 + L) bool, the positions where a target exists.
        """
        grad_off = torch.inference_mode if self.teacher_inference_mode \
            else torch.no_grad
        if self.teacher_dtype is None:
            with grad_off():
                target, valid = self._teacher_features(
                    name, images, ids_keep, ids_restore)
        else:
            self._apply_teacher_dtype()  # outside inference mode
            # Autocast would recast the teacher weights on every op.
            with grad_off(), torch.autocast(images.device.type,
                                            enabled=False):
                target, valid = self._teacher_features(
                    name, images.to(self.teacher_dtype), ids_keep,
                    ids_restore)
        # Inference tensors cannot be saved for backward (the head's
        # target_norm='none') or updated in place (valid, in loss) outside
        # inference mode: hand the loss ordinary tensors.
        target = target.float()
        if target.is_inference():
            target = target.clone()
        if valid.is_inference():
            valid = valid.clone()
        return target, valid

    def _teacher_features(
            self, name: str, images: torch.Tensor, ids_keep: torch.Tensor,
            ids_restore: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        teacher = self.teachers[name]
        B, L = images.shape[0], self.num_patches
        valid = images.new_ones(B, 1 + L, dtype=torch.bool)
        if isinstance(teacher, VisionTransformer):
            layer = teacher.out_indices[-1]
            if not self.mask_teacher_input:
                return vit_forward_tokens(teacher, images, None,
                                          layer), valid
            target = vit_forward_tokens(teacher, images, ids_keep, layer)
            target = unshuffle_tokens(target, ids_restore,
                                      target.new_zeros(1, 1, 1))
            valid[:, 1:] = ids_restore < ids_keep.shape[1]
            return target, valid
        feat = teacher(images)
        feat = feat[-1] if isinstance(feat, (tuple, list)) else feat
        if feat.dim() != 4 or feat.shape[2] * feat.shape[3] != L:
            raise RuntimeError(
                f'MomaAlgorithm: teacher {name!r} returned features of shape '
                f'{tuple(feat.shape)}; a non-ViT teacher must return '
                f'(B, C, h, w) with h * w = {L} (the student grid).')
        tokens = feat.flatten(2).transpose(1, 2)  # (B, L, C)
        target = torch.cat([tokens.new_zeros(B, 1, tokens.shape[2]), tokens],
                           dim=1)
        valid[:, 0] = False  # no class token to align with
        return target, valid

    def _sample_ids(self, data_samples: Optional[List[DataSample]],
                    device: torch.device) -> Optional[torch.Tensor]:
        """(B, ) int64 dataset indices of the batch, on ``device``.

        They key this step's masks (and the teacher cache). None (masks from
        the global generator) if a sample has no ``sample_idx``, which every
        MMEngine dataset provides.
        """
        ids = [getattr(s, 'sample_idx', None) for s in data_samples or []]
        if not ids or any(i is None for i in ids):
            if self.cache_cfg is not None:
                raise ValueError(
                    'MomaAlgorithm: teacher_cache needs the sample_idx of '
                    'every data sample (MMEngine datasets set it); got '
                    f'sample_idx values {ids[:4]!r}; set '
                    'teacher_cache=None.')
            return None
        sample_ids = torch.tensor(ids, dtype=torch.int64)
        if device.type == 'cuda':  # a pinned copy does not wait for the GPU
            sample_ids = sample_ids.pin_memory()
        return sample_ids.to(device, non_blocking=True)

    # ------------------------------------------------------------ cache
    @staticmethod
    def _fingerprint(images: torch.Tensor) -> torch.Tensor:
        """(B, ) float64 position-weighted sums: a flip or crop changes
        them, an identical image reproduces them."""
        flat = images.detach().flatten(1).double()
        weights = torch.linspace(
            1.0, 2.0, flat.shape[1], dtype=torch.float64, device=flat.device)
        return flat @ weights

    def _cached_targets(
        self, images: torch.Tensor, sample_ids: Optional[torch.Tensor]
    ) -> Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]]:
        """The cached ``(target, valid)`` per teacher if every sample of
        the batch has them (one host sync), else None."""
        if self.cache_cfg is None:
            return None
        size = self.cache_cfg['size']
        if self._cache_filled is None:
            self._cache_filled = torch.zeros(
                size, dtype=torch.bool, device=images.device)
            self._cache_print = torch.zeros(
                size, dtype=torch.float64, device=images.device)
        bad = (sample_ids < 0) | (sample_ids >= size)
        hit, any_bad = torch.stack([
            self._cache_filled[sample_ids.clamp(0, size - 1)].all(),
            bad.any()
        ]).tolist()
        if any_bad:
            raise ValueError(
                f'MomaAlgorithm: teacher_cache.size={size} but this batch '
                f'has sample_idx {sample_ids[bad][0].item()}; set '
                'teacher_cache.size to at least the number of training '
                'samples.')
        if not hit:
            return None
        if not self._cache_hit_logged:
            self._cache_hit_logged = True
            mib = sum(t.numel() * t.element_size() + v.numel()
                      for t, v in self._cache.values()) / 2**20
            print_log(
                f'MomaAlgorithm: teacher_cache reused the targets of a whole '
                f'batch for the first time; the teachers run only for '
                f'samples not cached yet ({mib:.0f} MiB per process).',
                logger='current')
        stored = self._cache_print[sample_ids]
        now = self._fingerprint(images)
        changed = ~torch.isclose(now, stored, rtol=1e-9, atol=1e-9)
        if changed.any():
            raise RuntimeError(
                'MomaAlgorithm: teacher_cache needs the same input image for '
                f'a sample in every epoch, but sample '
                f'{sample_ids[changed][0].item()} changed since its targets '
                'were cached: the train pipeline has a random transform '
                '(e.g. RandomResizedCrop, RandomFlip). Remove it, or set '
                'model.teacher_cache=None.')
        return {
            name: (target[sample_ids].float(), valid[sample_ids])
            for name, (target, valid) in self._cache.items()
        }

    def _cache_store(self, name: str, sample_ids: Optional[torch.Tensor],
                     target: torch.Tensor, valid: torch.Tensor) -> None:
        if self.cache_cfg is None:
            return
        if name not in self._cache:
            shape = (self.cache_cfg['size'], ) + tuple(target.shape[1:])
            self._cache[name] = (
                target.new_zeros(shape, dtype=self.cache_cfg['dtype']),
                valid.new_zeros((shape[0], ) + tuple(valid.shape[1:])))
        cache, cache_valid = self._cache[name]
        cache[sample_ids] = target.detach().to(cache.dtype)
        cache_valid[sample_ids] = valid

    def loss(self, inputs: Union[torch.Tensor, List[torch.Tensor]],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Teachers -> targets; masked student -> necks -> heads -> losses.

        Returns:
            dict[str, torch.Tensor]: ``loss_<teacher>`` for each teacher,
            already weighted, so that their sum is the training loss.
        """
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        grid = (images.shape[-2] // self.backbone.patch_embed.projection
                .stride[0], images.shape[-1] //
                self.backbone.patch_embed.projection.stride[1])
        if grid != self.patch_resolution:
            raise RuntimeError(
                f'MomaAlgorithm: input images of size '
                f'{tuple(images.shape[-2:])} give a {grid} patch grid, but '
                f'the model was built for {self.patch_resolution}; set '
                'img_size in the model to the crop size of the pipeline.')
        sample_ids = self._sample_ids(data_samples, images.device)
        noise = None
        if sample_ids is not None:
            noise = keyed_token_noise(self.mask_seed, self.mask_step,
                                      sample_ids, self.num_patches)
            self.mask_step += 1
        ids_keep, ids_restore, mask = random_token_mask(
            images.shape[0], self.num_patches, self.mask_ratio, images.device,
            noise)
        cached = self._cached_targets(images, sample_ids)
        latent = vit_forward_tokens(self.backbone, images, ids_keep)
        losses = {}
        for name in self.teachers:
            if cached is not None:
                target, valid = cached[name]
            else:
                target, valid = self.teacher_targets(name, images, ids_keep,
                                                     ids_restore)
                self._cache_store(name, sample_ids, target, valid)
            neck = self.necks[name]
            if not neck.predicts_masked:
                valid[:, 1:] &= ids_restore < ids_keep.shape[1]
            pred = neck(latent, ids_restore)
            head_loss = self._head_losses.get(name, self.heads[name].loss)
            loss = head_loss(pred, target, mask, valid)
            losses[f'loss_{name}'] = loss * self.loss_weights[name]
        if self.cache_cfg is not None and cached is None:
            self._cache_filled[sample_ids] = True
            self._cache_print[sample_ids] = self._fingerprint(images)
        return losses
