# CMID ablation: local (DINO-style, position-matched cells) loss only.
_base_ = ['./_base_/cmid_r18.py']
model = dict(loss_weights=dict(loss_rec=0.0, loss_global=0.0, loss_local=1.0))
