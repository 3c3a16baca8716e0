# CMID ablation: global (MoCo-style) loss only, on the masked student views.
_base_ = ['./_base_/cmid_r18.py']
model = dict(loss_weights=dict(loss_rec=0.0, loss_global=1.0, loss_local=0.0))
