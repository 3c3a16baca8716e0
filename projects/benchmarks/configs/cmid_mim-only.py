# CMID ablation: masked image modelling only (global and local losses weighted 0; they are
# still computed, so the cost per iteration equals full CMID's).
_base_ = ['./_base_/cmid_r18.py']
model = dict(loss_weights=dict(loss_rec=1.0, loss_global=0.0, loss_local=0.0))
