# CMID (all three losses, weight 1 each) for the learning-signal study.
_base_ = ['./_base_/cmid_r18.py']
