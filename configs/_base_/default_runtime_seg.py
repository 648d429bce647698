# Runtime of the pera-mm segmentation configs (MMSeg scope).
default_scope = 'mmseg'
custom_imports = dict(imports=['pera_mm'], allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py falls back to gloo without CUDA
)

vis_backends = [dict(type='LocalVisBackend')]
# no fixed `name`: each Runner gets its own visualizer (MMSeg's 'visualizer' would make
# a second Runner in the same process reuse the first one's save_dir)
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)

# tools/test.py --tta: the dataset config's tta_pipeline + this wrapper
tta_model = dict(type='SegTTAModel')
