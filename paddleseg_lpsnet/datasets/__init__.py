"""Dataset tooling: the Cityscapes layout, a synthetic street-scene generator and checks.

Nothing here is registered in PaddleSeg's managers: configs use PaddleSeg's own
`Cityscapes` and `Dataset` types, and these modules write or verify their layout.
"""
