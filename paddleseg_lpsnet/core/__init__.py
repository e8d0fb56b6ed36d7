"""The engine: training (core.train), evaluation (core.val), and what they share.

Import the submodules directly (`from paddleseg_lpsnet.core.train import train`);
this package imports nothing on its own.
"""
