# Optional: the training and evaluation curves also as TensorBoard events
# (`<work_dir>/<timestamp>/vis_data/`, `tensorboard --logdir work_dirs`); needs the
# `tensorboard` package. Add this file to a config's `_base_` list after
# default_runtime.py.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
