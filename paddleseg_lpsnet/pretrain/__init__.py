"""The ImageNet pretraining stage: PaddleClas configs, run by PaddleClas or by our trainer.

`lpsnet pretrain -c pretrain_imagenet/LPSNet_M.yaml` runs PaddleClas's own Engine
when a PaddleClas source tree is importable (`ppcls.engine`), with our classifiers
registered as PaddleClas architectures (archs.py); otherwise it runs trainer.py,
which reads the same sections with the same meaning, built from the paddleclas
wheel's pieces (config parser, transforms, arch builder, logger) and Paddle's.
The checkpoints (best_model / latest / epoch_N .pdparams) load into a segmentation
backbone through its `pretrained` argument.
"""
