"""The launch of training and testing in mmmoma.apis.launch."""
import torch

import mmmoma  # noqa: F401
from mmmoma.apis import launch


def test_cpu_distributed_setup(monkeypatch):
    from mmengine import Config
    import torch.distributed as dist
    cfg = Config(
        dict(
            model=dict(
                neck=dict(norm_cfg=dict(type='SyncBN')),
                head=[dict(norm_cfg=dict(type='MMSyncBN'))]),
            env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert launch.setup_cpu_distributed(cfg, 'none') is False
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert launch.setup_cpu_distributed(cfg, 'pytorch') is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT='29533').items():
        monkeypatch.setenv(key, value)
    try:
        assert launch.setup_cpu_distributed(cfg, 'pytorch') is True
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.neck.norm_cfg.type == 'BN'
    assert cfg.model.head[0].norm_cfg.type == 'BN'
