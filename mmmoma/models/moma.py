"""MomaAlgorithm: distil frozen teachers into a masked student ViT."""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import ModuleDict
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from .checkpoint import load_pretrained, pop_pretrained
from .config_checks import (check_input_grid,
                            check_layer_fusion, check_loss_weights,
                            check_mask_guide, check_mask_ratio,
                            check_neck_warmup, check_patch_grid,
                            check_positions, check_sample_ids,
                            check_student, check_teacher_names,
                            check_visible_patches,
                            fill_head_cfg, fill_neck_cfg, per_teacher)
from .frozen_teachers import FrozenTeachers, keep_out_of_checkpoints
from .mask_sampler import MaskSampler
from .speed import check_compile, compile_parts
from .teacher_balance import TeacherBalance
from .teacher_cache import TeacherCache
from .utils import sample_indices, vit_forward_tokens

#: The teacher-cache slot of the guide teacher's attention (a name that no
#: target key takes: those are teacher names and ``<name>_l<block>``).
ATTENTION = ':attention'


@MODELS.register_module()
class MomaAlgorithm(BaseSelfSupervisor):
    """MOMA: distil pretrained MoCo v3 / MAE teachers into one student.

    Implementation of `MOMA: Distill from
    Self-Supervised Teachers <https://arxiv.org/abs/2302.02089>`_. Frozen
    teachers (:class:`FrozenTeachers`) see the original image; the student
    sees only the visible ``1 - mask_ratio`` of its patches; one
    :class:`MomaNeck` per teacher projects the student tokens to that
    teacher's feature space and one :class:`SmoothL1AlignHead` per teacher
    aligns them with the normalised teacher features. The loss is the
    weighted sum over teachers (or, beyond the paper, ``teacher_balance``;
    a teacher with several ``out_indices`` gives one target per block).

    A sample's mask depends only on ``(mask_seed, mask_step, sample_idx)``
    (buffers, saved in checkpoints; see :class:`MaskSampler`): N processes
    train exactly like one with an N times larger batch, and a resumed run
    redraws the same masks.

    Args:
        backbone (dict): The student, an MMPretrain ViT (``MAEViT`` in the
            configs). A ``Pretrained`` ``init_cfg`` (the single-teacher
            modes) is loaded strictly.
        teachers (dict): ``{name: backbone config}``, see
            :class:`FrozenTeachers`. A ``Pretrained`` ``init_cfg`` is loaded
            strictly by :meth:`init_weights`.
        neck (dict): A :class:`MomaNeck` config shared by all teachers, or
            ``{name: config}``. ``in_channels``, ``out_channels`` and
            ``patch_resolution`` are filled in when absent, checked when
            present.
        head (dict): A :class:`SmoothL1AlignHead` config, shared or per
            teacher, like ``neck``.
        mask_ratio (float): Fraction of student patches hidden, in (0, 1).
            Defaults to 0.9.
        loss_weights (dict, optional): ``{name: weight}``; teachers not named
            get 0. Defaults to None: the average over teachers.
        mask_teacher_input (bool): Ablation: teachers see the same visible
            patches as the student, so targets exist only at visible
            positions. Defaults to False.
        save_teachers (bool): Keep teacher weights in saved checkpoints.
            Defaults to False: they are rebuilt from their ``init_cfg``.
        teacher_dtype (str, optional): Speed: run the teachers in
            ``'bfloat16'``, ``'float16'`` or ``'float32'``, autocast off;
            targets are float32 (bf16 ones differ by rounding, relative 1e-3
            to 1e-2). Defaults to None: the model's dtype.
        teacher_inference_mode (bool): Speed: ``torch.inference_mode`` for
            the teachers (same numbers). Defaults to False.
        compile (bool | dict): Speed: ``True``, or ``torch.compile``
            arguments plus ``parts``; see
            :func:`~mmmoma.models.speed.check_compile`. Defaults to False.
        teacher_cache (dict, optional): Speed, for a deterministic train
            pipeline: ``dict(size=N, dtype='float32')`` reuses each sample's
            targets after its first step (:class:`TeacherCache`, ``N`` at
            least the dataset length). Not with ``mask_teacher_input``.
            Defaults to None: the teachers run every step, as on ImageNet.
        teacher_resample (str, optional): Teachers on another patch grid
            (e.g. DINOv2's 14-px patches) have their patch features
            interpolated to the student's grid with this ``F.interpolate``
            mode. Defaults to ``'bilinear'``; None refuses such teachers.
        teacher_balance (dict, optional): How the per-target losses add up
            (beyond the paper): ``dict(type='average')`` (the paper, weighted
            by ``loss_weights``), ``dict(type='drop', p=0.5)`` (UNIC's
            teacher dropping: per image, every target but the one of highest
            loss is dropped with probability p) or
            ``dict(type='uncertainty')`` (one learned log-variance s per
            teacher: ``exp(-s) * loss + s``). Each target's effective weight
            is logged as ``weight_<target>``. Defaults to None: average.
        layer_fusion (str): A teacher with several ``out_indices`` gives one
            target per block (``'separate'``: a neck and a head each, losses
            ``loss_<teacher>_l<block>``, the teacher's weight shared) or one
            target, the mean of the per-token layer-normed blocks
            (``'mean'``, data2vec's top-K average). Defaults to
            ``'separate'``.
        mask_guide (dict, optional): Attention-guided masking (MILAN,
            MaskAlign): ``dict(teacher=name, random_share=0.5)`` keeps for
            the student the patches the teacher's class token attends to
            most, except a ``random_share`` of the visible patches drawn
            uniformly from the rest. Defaults to None: uniform masks.
        neck_warmup_iters (int): For the first N training steps the
            student's tokens reach the necks detached, so that random necks
            fit an initialised student before it changes (LP-FT). Under DDP
            this needs ``find_unused_parameters=True``. Defaults to 0.
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
                 teacher_resample: Optional[str] = 'bilinear',
                 teacher_balance: Optional[dict] = None,
                 layer_fusion: str = 'separate',
                 mask_guide: Optional[dict] = None,
                 neck_warmup_iters: int = 0,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        names = check_teacher_names(teachers)
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.loss_weights = check_loss_weights(loss_weights, names)
        backbone = copy.deepcopy(backbone)
        check_patch_grid(backbone, 'backbone')
        self.student_init = pop_pretrained(backbone, 'backbone.init_cfg')
        super().__init__(
            backbone=backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        check_student(self.backbone)
        if hasattr(self.backbone, 'mask_ratio'):
            self.backbone.mask_ratio = self.mask_ratio
        self.patch_resolution = tuple(self.backbone.patch_resolution)
        self.num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        check_visible_patches(mask_ratio, self.num_patches)
        self.mask_teacher_input = mask_teacher_input
        # Buffers, so that checkpoints carry them and a resumed run redraws
        # the same masks; the seed comes from the global generator (the
        # Runner's seed).
        self.register_buffer(
            'mask_seed', torch.randint(1 << 62, ()), persistent=True)
        self.register_buffer(
            'mask_step', torch.zeros((), dtype=torch.int64), persistent=True)
        self.teachers = FrozenTeachers(teachers, self.patch_resolution,
                                       mask_teacher_input, teacher_dtype,
                                       teacher_inference_mode,
                                       teacher_resample)
        self.layer_fusion = check_layer_fusion(layer_fusion)
        self.balance = TeacherBalance(teacher_balance, names)
        self.mask_guide = check_mask_guide(
            mask_guide, names,
            {n: self.teachers.has_cls_token(n) for n in names},
            mask_teacher_input)
        self.masks = MaskSampler(self.num_patches, self.mask_ratio,
                                 self.mask_guide)
        self.neck_warmup_iters = check_neck_warmup(neck_warmup_iters)
        self._build_targets(names, neck, head)
        self.save_teachers = save_teachers
        if not save_teachers:
            keep_out_of_checkpoints(self, 'teachers')
        self.compile_cfg = check_compile(compile)
        self._head_losses = (
            compile_parts(self, self.compile_cfg) if self.compile_cfg else {})
        self.teacher_cache = TeacherCache.build(teacher_cache,
                                                mask_teacher_input)

    def _build_targets(self, names: List[str], neck: dict,
                       head: dict) -> None:
        """One target per (teacher, block) unless fused; its key names its
        neck, head and loss (``target_keys``, ``owner``)."""
        self.target_keys: Dict[str, List[str]] = {}
        for name in names:
            layers = self.teachers.layers(name)
            separate = len(layers) > 1 and self.layer_fusion == 'separate'
            self.target_keys[name] = ([f'{name}_l{i}' for i in layers]
                                      if separate else [name])
        self.owner = {k: n for n, ks in self.target_keys.items() for k in ks}
        # MMEngine's ModuleDict, so that init_weights reaches them.
        self.necks, self.heads = ModuleDict(), ModuleDict()
        neck_cfgs = per_teacher(neck, names, 'neck')
        head_cfgs = per_teacher(head, names, 'head')
        for key, name in self.owner.items():
            dims = self.teachers.feature_dims(name)
            self.necks[key] = MODELS.build(
                fill_neck_cfg(copy.deepcopy(neck_cfgs[name]), name,
                              self.backbone.embed_dims, dims,
                              self.patch_resolution))
            self.heads[key] = MODELS.build(
                fill_head_cfg(copy.deepcopy(head_cfgs[name]), key, dims,
                              1 + self.num_patches))
            check_positions(name, self.heads[key], self.necks[key],
                            self.mask_teacher_input)

    def init_weights(self) -> None:
        """Random init, then strict loads of the teachers and the student."""
        super().init_weights()
        self.teachers.load_weights()
        if self.student_init is not None:
            load_pretrained(self.backbone, self.student_init,
                            'backbone.init_cfg')

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """Student features of unmasked images (the backbone's out_type)."""
        if hasattr(self.backbone, 'random_masking'):
            return self.backbone(inputs, mask=None)
        return self.backbone(inputs)

    def loss(self, inputs: Union[torch.Tensor, List[torch.Tensor]],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Teachers -> targets; masked student -> necks -> heads -> losses.

        Returns:
            dict[str, torch.Tensor]: ``loss_<target>`` for each target,
            already weighted, so that their sum is the training loss (see
            :class:`TeacherBalance` for what else a balance logs).
        """
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        sample_ids = self._sample_ids(data_samples, images)
        step = self.mask_step.clone()
        if sample_ids is not None:  # the step of the keyed streams
            self.mask_step += 1
        if self.mask_teacher_input:  # the targets depend on the mask
            ids_keep, ids_restore, mask = self.draw_mask(
                images, sample_ids, step)
            targets, _ = self.all_targets(images, sample_ids, ids_keep,
                                          ids_restore)
        else:  # the mask may depend on a teacher's attention
            targets, attention = self.all_targets(images, sample_ids)
            ids_keep, ids_restore, mask = self.draw_mask(
                images, sample_ids, step, attention)
        latent = vit_forward_tokens(self.backbone, images, ids_keep)
        if self.neck_warmup_iters and int(step) < self.neck_warmup_iters:
            latent = latent.detach()
        extra = dict(per_sample=True) if self.balance.per_sample else {}
        raw = {}
        for key in self.necks:
            pred = self.necks[key](latent, ids_restore)
            valid = self.valid_positions(key, mask == 0)
            head_loss = self._head_losses.get(key, self.heads[key].loss)
            raw[key] = head_loss(pred, targets[key], mask, valid, **extra)
        return self.balance(raw, self.key_weights, self.owner, self.mask_seed,
                            step, sample_ids)

    @property
    def key_weights(self) -> Dict[str, float]:
        """``{target: weight}``: a teacher's ``loss_weights`` entry shared
        evenly by its targets."""
        return {
            k: self.loss_weights[n] / len(self.target_keys[n])
            for k, n in self.owner.items()
        }

    def all_targets(
        self,
        images: torch.Tensor,
        sample_ids: Optional[torch.Tensor],
        ids_keep: Optional[torch.Tensor] = None,
        ids_restore: Optional[torch.Tensor] = None
    ) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """Every target of the batch, from the teacher cache when it has
        them, and the guide teacher's attention.

        Returns:
            tuple: ``{target key: (B, 1 + L, Ct)}`` float32 and the (B, L)
            attention of ``mask_guide``'s teacher (None without a guide).
        """

        def compute() -> Dict[str, torch.Tensor]:
            targets = {}
            for name in self.teachers:
                found, attention = self.teacher_targets(
                    name, images, ids_keep, ids_restore)
                targets.update(found)
                if attention is not None:
                    targets[ATTENTION] = attention
            return targets

        cache = self.teacher_cache
        targets = cache.fetch(images, sample_ids,
                              compute) if cache else compute()
        return targets, targets.pop(ATTENTION, None)

    def draw_mask(
        self,
        images: torch.Tensor,
        sample_ids: Optional[torch.Tensor],
        step: Optional[torch.Tensor] = None,
        attention: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This step's student mask (:class:`MaskSampler`): ``ids_keep``
        (B, Lk), ``ids_restore`` (B, L), ``mask`` (B, L); ``step`` defaults
        to ``mask_step``, ``attention`` (B, L) is the guide teacher's."""
        return self.masks(images, self.mask_seed,
                          self.mask_step if step is None else step,
                          sample_ids, attention)

    def teacher_targets(
        self,
        name: str,
        images: torch.Tensor,
        ids_keep: Optional[torch.Tensor] = None,
        ids_restore: Optional[torch.Tensor] = None
    ) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """The targets of teacher ``name`` on the full token grid.

        Args:
            name (str): The teacher.
            images (torch.Tensor): (B, 3, H, W), the original images.
            ids_keep (torch.Tensor, optional): (B, Lk), what the teacher sees
                with ``mask_teacher_input`` (ignored without). Defaults to
                None.
            ids_restore (torch.Tensor, optional): (B, L), with ``ids_keep``.

        Returns:
            tuple: ``{target key: (B, 1 + L, Ct)}`` float32 (see
            :meth:`valid_positions` for where they hold), and the (B, L)
            class-token attention when ``name`` guides the mask, else None.
        """
        masked = (ids_keep, ids_restore) if self.mask_teacher_input else ()
        guide = self.mask_guide is not None and (self.mask_guide['teacher']
                                                 == name)
        feats, attention = self.teachers.outputs(
            name, images, *masked, attention=guide)
        keys = self.target_keys[name]
        if len(feats) > 1 and len(keys) == 1:  # layer_fusion='mean'
            # Adapted from data2vec: the mean of per-token normed blocks.
            feats = [
                torch.stack([
                    F.layer_norm(f, f.shape[-1:], eps=1e-6) for f in feats
                ]).mean(0)
            ]
        return dict(zip(keys, feats)), attention

    def valid_positions(self, key: str,
                        visible: torch.Tensor) -> torch.Tensor:
        """Where target ``key`` (a teacher or one of its blocks) has a value
        and its neck a prediction.

        The one place that decides it: no class token for a non-ViT
        teacher; visible patches only when the teachers see the masked input
        or the neck predicts visible tokens only. The head keeps its
        ``positions`` among these.

        Returns:
            torch.Tensor: (B, 1 + L) bool from ``visible`` (B, L) bool.
        """
        only_visible = (self.mask_teacher_input
                        or not self.necks[key].predicts_masked)
        patches = visible if only_visible else torch.ones_like(visible)
        cls = visible.new_full((visible.shape[0], 1),
                               self.teachers.has_cls_token(self.owner[key]))
        return torch.cat([cls, patches], dim=1)

    def _sample_ids(self, data_samples: Optional[List[DataSample]],
                    images: torch.Tensor) -> Optional[torch.Tensor]:
        """(B, ) int64 dataset indices that key the masks and the cache."""
        check_input_grid(images, self.backbone, self.patch_resolution)
        ids = [getattr(s, 'sample_idx', None) for s in data_samples or []]
        check_sample_ids(
            ids,
            dict(teacher_cache=self.teacher_cache,
                 neck_warmup_iters=self.neck_warmup_iters))
        return sample_indices(ids, images.device)
