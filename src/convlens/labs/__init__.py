"""Training experiments, one file per lab (``colourize``: colourization on CIFAR-10).

Labs import torch and matplotlib; the analysis core never imports this package.
"""
