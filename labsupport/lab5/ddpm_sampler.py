"""Lab 5 part 2 (notebook 02): the reference of the piece `ddpm_sampler` is the package's own sampler.

`labsupport.samplers.DDPMSampler` is the class every other part of the lab samples with, so the
students' version is checked against exactly what the lab uses.
"""
from ..samplers.ddpm import DDPMSampler

__all__ = ["DDPMSampler"]
