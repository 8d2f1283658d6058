"""The networks of the lab and the weights that ship inside the package.

    unet        the ε-predictor `model(x_t, t, y=None)` (10 digits + a null class) and its UNetConfig
    classifier  the evaluation CNN whose features define the MNIST FID
    pretrained  load_pretrained / load_classifier / load_reference_stats: safetensors verified by SHA-256
    scripted    ScriptedNoise, a stand-in network answering fixed numbers for hand-worked examples
    weights/    the shipped files and their metadata (configuration, hashes, training record)
"""
