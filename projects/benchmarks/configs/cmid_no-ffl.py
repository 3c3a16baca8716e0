# CMID ablation: no focal frequency loss (the MIM head's frequency term weighted 0; the
# pixel-space focal-L1 term and the global and local losses unchanged).
_base_ = ['./_base_/cmid_r18.py']
model = dict(mim_head=dict(loss_freq=dict(type='FocalFrequencyLoss', loss_weight=0.0)))
