"""The course's equations as plain tensor functions: no network, no randomness of their own.

    schedule     NoiseSchedule (β, α, ᾱ and every table), extract, alpha_bar (ᾱ_{-1} = 1)  notebook 01
    forward      q_sample, q_step, q_mean_variance                                       notebook 01
    predictions  predict_x0_from_eps, predict_eps_from_x0                                notebooks 02, 03
    ddpm         posterior_mean_from_eps, posterior_mean_from_x0, posterior_variance,
                 ddpm_step_given_eps                                                     notebook 02
    ddim         ddim_sigma, ddim_coefficients, ddim_step_given_eps                      notebooks 03, 04
    guidance     cfg_blend, classifier_guided_eps, rescale_guided_eps                   notebooks 05, 07
    solvers      half_log_snr, edm_sigma, dpm_solver_first_order_update, dpm_solver_2m_update,
                 to_edm_scaling, from_edm_scaling, edm_derivative, heun_euler_update,
                 heun_trapezoid_update                                                   notebook 07
    interpolate  slerp                                                                   notebook 03
    validate     the checks of their inputs (η, guidance scale, finite tensors)

The samplers call a network for ε and hand it to these functions; the Lab 5 references, the
checks' catalogue of mistakes and the notebooks build on them too. These are the equations the
students write, so the grader keeps them out of reach while a student's method is graded.
"""
from .ddim import adds_noise, ddim_coefficients, ddim_sigma, ddim_step_given_eps
from .ddpm import (VARIANCE_TYPES, ddpm_step_given_eps, posterior_mean_from_eps, posterior_mean_from_x0,
                   posterior_variance)
from .forward import q_mean_variance, q_sample, q_step
from .guidance import cfg_blend, classifier_guided_eps, rescale_guided_eps
from .interpolate import slerp
from .predictions import predict_eps_from_x0, predict_x0_from_eps
from .solvers import (dpm_solver_2m_update, dpm_solver_first_order_update, edm_derivative, edm_sigma,
                      from_edm_scaling, half_log_snr, heun_euler_update, heun_trapezoid_update, to_edm_scaling)
from .schedule import NoiseSchedule, alpha_bar, cosine_betas, extract, linear_betas
from .validate import check_eta, check_finite, check_guidance_scale

__all__ = [
    "NoiseSchedule", "linear_betas", "cosine_betas", "extract", "alpha_bar", "q_sample", "q_step", "q_mean_variance",
    "predict_x0_from_eps", "predict_eps_from_x0", "posterior_mean_from_eps", "posterior_mean_from_x0",
    "posterior_variance", "ddpm_step_given_eps", "VARIANCE_TYPES", "ddim_sigma", "ddim_coefficients",
    "ddim_step_given_eps", "adds_noise", "cfg_blend", "classifier_guided_eps", "rescale_guided_eps", "slerp", "check_eta", "check_guidance_scale", "check_finite",
    "half_log_snr", "edm_sigma", "dpm_solver_first_order_update", "dpm_solver_2m_update", "to_edm_scaling",
    "from_edm_scaling", "edm_derivative", "heun_euler_update", "heun_trapezoid_update",
]
