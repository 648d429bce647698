# Faster R-CNN + FPN on the PerA ViT-B/16 ViT-Adapter backbone (4 maps of 768 channels
# at strides 4/8/16/32; FPN adds a max-pooled stride-64 level), the detection settings
# of the paper (method.md 1.7), 20 DIOR classes.
# Norms of the adapter: SyncBN (GPU configs); tools/train.py turns it into BN for
# CPU/gloo runs.
norm_cfg = dict(type='SyncBN', requires_grad=True)

# Normalisation of the PerA pretraining (configs/_base_/datasets/pera_rsrsd-448px.py,
# method.md 1.1): ImageNet mean/std in RGB, 0-255. MMDet loads images as BGR, so the
# preprocessor converts to RGB first. A checkpoint pretrained with the remote-sensing
# statistics needs mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55] here.
# Batches are padded to a multiple of 32 (the adapter's coarsest stride).
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32,
)

# Anchors covering 4..512 px (method.md 1.7) over the 5 FPN levels (strides 4..64):
# base sizes 4, 16, 64, 128, 256 x scales 1, 2 give 4/8, 16/32, 64/128, 128/256 and
# 256/512 px, i.e. every octave from 4 to 512; aspect ratios (h / w) 0.2, 0.5, 1, 2, 5
# span 0.2..5.0. 10 anchors per location.
anchor_generator = dict(
    type='AnchorGenerator',
    strides=[4, 8, 16, 32, 64],
    base_sizes=[4, 16, 64, 128, 256],
    scales=[1, 2],
    ratios=[0.2, 0.5, 1.0, 2.0, 5.0],
)

model = dict(
    type='FasterRCNN',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PerAViTAdapter',
        arch='base',
        pretrain_size=448,  # position grid of the pretraining (28 x 28), resized every forward
        patch_size=16,
        drop_path_rate=0.3,  # method.md 1.7; one rate for every block and extractor
        drop_path_mode='row',  # per-sample stochastic depth
        conv_inplane=64,
        n_points=4,
        deform_num_heads=12,
        init_values=0.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        with_cffn=True,
        cffn_ratio=0.25,
        deform_ratio=1.0,  # as the authors' released PerA downstream code
        add_vit_feature=True,
        use_extra_extractor=True,
        norm_cfg=norm_cfg,
        with_cp=False,
        # the experiment config adds init_cfg=dict(type='Pretrained', checkpoint=...):
        # the teacher ViT of a PerA checkpoint
    ),
    neck=dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5),
    rpn_head=dict(
        type='RPNHead',
        in_channels=256,
        feat_channels=256,
        anchor_generator=anchor_generator,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0),
    ),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
        ),
        bbox_head=dict(
            type='Shared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=20,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0.0] * 4,
                target_stds=[0.1, 0.1, 0.2, 0.2],
            ),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0),
        ),
    ),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1,
            ),
            sampler=dict(
                type='RandomSampler',
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False,
            ),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        rpn_proposal=dict(
            nms_pre=2000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.8),  # RPN NMS 0.8 (method.md 1.7)
            min_bbox_size=0,
        ),
        rcnn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1,
            ),
            sampler=dict(
                type='RandomSampler',
                num=512,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True,
            ),
            pos_weight=-1,
            debug=False,
        ),
    ),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.8),  # RPN NMS 0.8 (method.md 1.7)
            min_bbox_size=0,
        ),
        # box score threshold 0.01, 200 detections per image (method.md 1.7);
        # the class-wise NMS IoU 0.5 is MMDet's default (not given in the paper)
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.5), max_per_img=200),
    ),
)
