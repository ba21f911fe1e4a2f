"""MomaAlgorithm: distil frozen teachers into a masked student ViT."""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import ModuleDict
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from .checkpoint import load_pretrained, pop_pretrained
from .config_checks import (check_input_grid, check_loss_weights,
                            check_mask_ratio, check_patch_grid,
                            check_positions, check_student,
                            check_teacher_names, check_visible_patches,
                            fill_neck_cfg, per_teacher)
from .frozen_teachers import FrozenTeachers, keep_out_of_checkpoints
from .speed import check_compile, compile_parts
from .teacher_cache import TeacherCache
from .utils import (keyed_token_noise, random_token_mask, sample_indices,
                    vit_forward_tokens)


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
    weighted sum over teachers.

    A sample's mask depends only on ``(mask_seed, mask_step, sample_idx)``
    (buffers, saved in checkpoints; see
    :func:`~mmmoma.models.utils.keyed_token_noise`): N processes train
    exactly like one with an N times larger batch, and a resumed run redraws
    the same masks.

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
        # MMEngine's ModuleDict, so that init_weights reaches them.
        self.necks, self.heads = ModuleDict(), ModuleDict()
        neck_cfgs = per_teacher(neck, names, 'neck')
        head_cfgs = per_teacher(head, names, 'head')
        for name in names:
            self.necks[name] = MODELS.build(
                fill_neck_cfg(neck_cfgs[name], name, self.backbone.embed_dims,
                              self.teachers.feature_dims(name),
                              self.patch_resolution))
            self.heads[name] = MODELS.build(head_cfgs[name])
            check_positions(name, self.heads[name], self.necks[name],
                            mask_teacher_input)
        self.save_teachers = save_teachers
        if not save_teachers:
            keep_out_of_checkpoints(self, 'teachers')
        self.compile_cfg = check_compile(compile)
        self._head_losses = (
            compile_parts(self, self.compile_cfg) if self.compile_cfg else {})
        self.teacher_cache = TeacherCache.build(teacher_cache,
                                                mask_teacher_input)

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
            dict[str, torch.Tensor]: ``loss_<teacher>`` for each teacher,
            already weighted, so that their sum is the training loss.
        """
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        sample_ids = self._sample_ids(data_samples, images)
        ids_keep, ids_restore, mask = self.draw_mask(images, sample_ids)
        cache = self.teacher_cache
        cached = cache.lookup(images, sample_ids) if cache else None
        latent = vit_forward_tokens(self.backbone, images, ids_keep)
        losses = {}
        for name in self.teachers:
            if cached is not None:
                target = cached[name]
            else:
                target, _ = self.teacher_targets(name, images, ids_keep,
                                                 ids_restore)
                if cache is not None:
                    cache.store(name, sample_ids, target)
            pred = self.necks[name](latent, ids_restore)
            valid = self.valid_positions(name, mask == 0)
            head_loss = self._head_losses.get(name, self.heads[name].loss)
            losses[f'loss_{name}'] = (
                head_loss(pred, target, mask, valid) * self.loss_weights[name])
        if cache is not None and cached is None:
            cache.commit(images, sample_ids)
        return losses

    def draw_mask(
        self, images: torch.Tensor, sample_ids: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This step's student mask, keyed by the samples when known.

        Returns:
            tuple: ``ids_keep`` (B, Lk), ``ids_restore`` (B, L) and ``mask``
            (B, L), see :func:`~mmmoma.models.utils.random_token_mask`.
        """
        noise = None
        if sample_ids is not None:
            noise = keyed_token_noise(self.mask_seed, self.mask_step,
                                      sample_ids, self.num_patches)
            self.mask_step += 1
        return random_token_mask(images.shape[0], self.num_patches,
                                 self.mask_ratio, images.device, noise)

    def teacher_targets(
            self, name: str, images: torch.Tensor, ids_keep: torch.Tensor,
            ids_restore: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of teacher ``name`` on the full token grid.

        Returns:
            tuple: ``target`` (B, 1 + L, Ct) float32 and ``valid``
            (B, 1 + L) bool, see :meth:`valid_positions`.
        """
        masked = (ids_keep, ids_restore) if self.mask_teacher_input else ()
        target = self.teachers.targets(name, images, *masked)
        visible = ids_restore < ids_keep.shape[1]
        return target, self.valid_positions(name, visible)

    def valid_positions(self, name: str,
                        visible: torch.Tensor) -> torch.Tensor:
        """Where teacher ``name`` has a target and its neck a prediction.

        The one place that decides it: no class token for a non-ViT
        teacher; visible patches only when the teachers see the masked input
        or the neck predicts visible tokens only. The head keeps its
        ``positions`` among these.

        Returns:
            torch.Tensor: (B, 1 + L) bool from ``visible`` (B, L) bool.
        """
        only_visible = (self.mask_teacher_input
                        or not self.necks[name].predicts_masked)
        patches = visible if only_visible else torch.ones_like(visible)
        cls = visible.new_full((visible.shape[0], 1),
                               self.teachers.has_cls_token(name))
        return torch.cat([cls, patches], dim=1)

    def _sample_ids(self, data_samples: Optional[List[DataSample]],
                    images: torch.Tensor) -> Optional[torch.Tensor]:
        """(B, ) int64 dataset indices that key the masks and the cache."""
        check_input_grid(images, self.backbone, self.patch_resolution)
        ids = [getattr(s, 'sample_idx', None) for s in data_samples or []]
        if (not ids or None in ids) and self.teacher_cache is not None:
            raise ValueError(
                'MomaAlgorithm: teacher_cache needs the sample_idx of every '
                'data sample (MMEngine datasets set it); got sample_idx '
                f'values {ids[:4]!r}; set teacher_cache=None.')
        return sample_indices(ids, images.device)
