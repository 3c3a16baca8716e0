# Unlabelled pretraining images in a folder (MillionAID or your own archive): every image file
# under `data_root`, recursively. Set data_root to your copy, e.g.
#   --cfg-options train_dataloader.dataset.data_root=/data/MillionAID/train
# Bad files stop the run with their name; to skip them (counted and reported per epoch):
#   --cfg-options train_dataloader.dataset.pipeline.1.on_error=skip
_base_ = ['./cmid_pipeline_rgb.py']

data_root = 'data/MillionAID/'
train_dataloader = dict(
    batch_size=64,  # per GPU; the reference trains 4 x 64
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    drop_last=True,
    dataset=dict(
        type='RSImageFolder',  # every image file under data_root, recursively
        data_root=data_root,
        with_label=False,
        pipeline={{_base_.train_pipeline}}))
