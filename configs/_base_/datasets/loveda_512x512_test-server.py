# LoveDA test-server export: predict the official test split (img_dir/test, no labels)
# and write one PNG per test image, full size, named as the image, valued 0..6 (the
# model's class indices: background, building, road, water, barren, forest,
# agricultural). Use this file instead of loveda_512x512.py in an experiment's
# _base_, or pass its two fields with --cfg-options; set output_dir per run.
_base_ = ['./loveda_512x512.py']

test_server_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(_delete_=True, img_path='img_dir/test'),
        pipeline=test_server_pipeline,
    )
)
test_evaluator = dict(
    _delete_=True,
    type='LoveDASubmissionMetric',
    output_dir='work_dirs/loveda_test_server/predictions',
    zip_path='work_dirs/loveda_test_server/submission.zip',
)
