"""The samplers: a network call for ε, then the course's update from `labsupport.maths` (DDPM, DDIM with η, guidance, inversion)."""
from .base import SamplerBase, Trajectory
from .ddim import SCHEDULE_TYPES, DDIMSampler, timestep_schedule
from .ddpm import VARIANCE_TYPES, DDPMSampler

__all__ = ["DDPMSampler", "DDIMSampler", "SamplerBase", "Trajectory", "timestep_schedule", "SCHEDULE_TYPES", "VARIANCE_TYPES"]
