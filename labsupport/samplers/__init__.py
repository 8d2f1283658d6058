"""Reference samplers with the Lab 5 interface."""
from .base import Trajectory
from .ddim import SCHEDULE_TYPES, DDIMSampler, timestep_schedule
from .ddpm import VARIANCE_TYPES, DDPMSampler

__all__ = ["DDPMSampler", "DDIMSampler", "Trajectory", "timestep_schedule", "SCHEDULE_TYPES", "VARIANCE_TYPES"]
