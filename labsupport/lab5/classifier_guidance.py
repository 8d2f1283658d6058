"""Classifier guidance: the reference for notebook 05's `classifier_guided_noise` (a bonus piece).

The equation is `labsupport.maths.guidance.classifier_guided_eps`; the gradient and the network
calls around it are in `labsupport.samplers.classifier_guidance`, where the samplers find them.
"""
from ..samplers.classifier_guidance import classifier_guided_noise

__all__ = ["classifier_guided_noise"]
