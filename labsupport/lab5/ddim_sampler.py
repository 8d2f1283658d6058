"""Lab 5 part 2 (notebook 03): the reference of the piece `ddim_sampler` is the package's own sampler.

`labsupport.samplers.DDIMSampler` is the class every other part of the lab samples with, so the
students' version is checked against exactly what the lab uses.
"""
from ..samplers.ddim import DDIMSampler

__all__ = ["DDIMSampler"]
