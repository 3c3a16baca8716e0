# Fine-tuning schedule of the paper (method.md §8): Adan, lr 3.125e-3, weight decay 0.02, 5 warm-up
# epochs, 200 epochs. Not given by the paper, chosen here: batch 64 on one GPU (the lr is taken
# to be for that batch; `--auto-scale-lr` rescales it), Adan's default betas (as in the
# pretraining recipe), no decay on 1-D parameters (biases, norms) nor on Swin's position
# tables, linear warm-up from 0.001x, then cosine to 1e-6 per iteration, float32
# (add `--amp` on a GPU), no gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adan', lr=3.125e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.02),
    paramwise_cfg=dict(
        flat_decay_mult=0.0,
        custom_keys={  # Swin only; these names do not occur in a ResNet
            '.relative_position_bias_table': dict(decay_mult=0.0),
            '.absolute_pos_embed': dict(decay_mult=0.0),
        }))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5, end=200,
         convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64, enable=False)
