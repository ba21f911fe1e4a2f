"""The study's training compute: counted step FLOPs, scaled to a run."""
import pytest

from mmmoma.apis.study.compute import flops_at, run_flops, step_flops
from mmmoma.apis.study.rows import STUDENT_CONFIG, TEACHER_CONFIGS


def vit_forward_flops(dims: int, ffn: int, blocks: int, tokens: int,
                      patch_pixels: int) -> int:
    """A ViT's forward FLOPs per image by hand (2 per multiply-add): patch
    embedding, then per block qkv + projection + MLP matmuls and the two
    attention products."""
    embed = 2 * (tokens - 1) * patch_pixels * dims
    matmuls = 2 * tokens * (4 * dims * dims + 2 * dims * ffn)
    attention = 2 * 2 * tokens * tokens * dims
    return embed + blocks * (matmuls + attention)


def test_student_step_counts_both_teachers_forward():
    per_image = step_flops(STUDENT_CONFIG, batch_size=2)
    # two 128-d, 4-block teachers on 49 patches of 4x4x3 pixels + a class
    # token
    teacher = vit_forward_flops(128, 512, 4, 50, 48)
    assert per_image['teachers'] == 2 * teacher
    # the student (forward and backward on 10% of the patches), the necks
    # and the heads cost something on top
    assert per_image['step'] > per_image['teachers']


def test_pretraining_step_has_no_teachers():
    per_image = step_flops(TEACHER_CONFIGS['mae'], batch_size=2)
    assert per_image['teachers'] == 0
    assert per_image['step'] > 0


def test_run_flops_with_and_without_cache():
    per_image = dict(step=10.0, teachers=4.0)
    assert run_flops(per_image, 100, 3, False) == [0, 1000, 2000, 3000]
    # the teachers run in the first epoch only
    assert run_flops(per_image, 100, 3, True) == [0, 1000, 1600, 2200]


def test_flops_at_reads_the_curve_between_epochs():
    curve, cumulative = [50.0, 60.0, 64.0], [0.0, 10.0, 30.0]
    assert flops_at(curve, cumulative, 0) == 50
    assert flops_at(curve, cumulative, 5) == 55
    assert flops_at(curve, cumulative, 20) == 62
    assert flops_at(curve, cumulative, 30) == 64
    assert flops_at(curve, cumulative, 31) is None
    with pytest.raises(ValueError, match='3 values needs as many'):
        flops_at(curve, cumulative[:2], 5)
