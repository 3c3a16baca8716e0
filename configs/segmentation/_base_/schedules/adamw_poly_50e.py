# The paper's Swin-B segmentation schedule (method.md §8), also used for ViT-B: 50 epochs,
# AdamW lr 6e-5, weight decay 0.01 (for 16 images per step), no decay on position embeddings,
# relative-position bias tables, cls token and norms; linear warm-up over the first epoch, then
# linear (poly, power 1) decay to 0 per iteration, as mmseg's Swin / ViT recipes.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),  # also Swin's absolute_pos_embed
            'relative_position_bias_table': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, begin=0, end=1, by_epoch=True,
         convert_to_iter_based=True),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1, end=50, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
