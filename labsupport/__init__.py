"""labsupport: the course package behind the Diffusion Sampling Lab (Lab 5, accelerated sampling).

    import labsupport as lab
    model, schedule = lab.load_pretrained()
    x0 = lab.DDIMSampler(model, schedule).sample((16, 1, 28, 28), num_steps=50)
"""
from .device import get_device
from .maths.forward import q_mean_variance, q_sample, q_step
from .maths.guidance import cfg_blend
from .samplers.guidance import guided_eps
from .maths.interpolate import slerp
from .models.pretrained import (load_autoencoder, load_classifier, load_noisy_classifier, load_pretrained,
                                load_reference_stats)
from .samplers import SCHEDULE_TYPES, VARIANCE_TYPES, DDIMSampler, DDPMSampler, Trajectory, timestep_schedule
from .samplers import DPMSolverSampler, HeunSampler
from .samplers import ClassifierGuided
from .maths.schedule import NoiseSchedule, cosine_betas, extract, linear_betas
from .models.unet import UNet, UNetConfig

__version__ = "0.1.0"

__all__ = [
    "get_device", "q_sample", "q_step", "q_mean_variance", "cfg_blend", "guided_eps", "slerp",
    "load_pretrained", "load_classifier", "load_reference_stats", "DDPMSampler", "DDIMSampler", "Trajectory",
    "timestep_schedule", "SCHEDULE_TYPES", "VARIANCE_TYPES", "NoiseSchedule", "linear_betas", "cosine_betas",
    "extract", "UNet", "UNetConfig", "DPMSolverSampler", "HeunSampler",
    "load_noisy_classifier", "load_autoencoder", "ClassifierGuided",
]
