"""The samplers: a network call for ε, then the course's update from `labsupport.maths` (DDPM, DDIM with η, guidance, inversion)."""
from .base import SamplerBase, Trajectory
from .classifier_guidance import ClassifierGuided, classifier_guided_noise, log_prob_grad
from .ddim import SCHEDULE_TYPES, DDIMSampler, timestep_schedule
from .ddpm import VARIANCE_TYPES, DDPMSampler
from .guidance_interval import IntervalGuidance
from .dpm_solver import DPMSolverSampler
from .heun import HeunSampler, heun_nfe, heun_steps_for_nfe

__all__ = ["IntervalGuidance", "ClassifierGuided", "classifier_guided_noise", "log_prob_grad", "DDPMSampler", "DDIMSampler", "SamplerBase", "Trajectory", "timestep_schedule", "SCHEDULE_TYPES", "VARIANCE_TYPES",
           "DPMSolverSampler", "HeunSampler", "heun_nfe", "heun_steps_for_nfe"]
