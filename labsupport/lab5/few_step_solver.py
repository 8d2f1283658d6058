"""Notebook 07: the reference of the piece `few_step_solver`, DPM-Solver++(2M) (Lu et al. 2022).

The student writes `dpm_solver_step` (the second-order multistep update and its first-order
fallback) and `sample` (the loop that keeps the previous x̂0). The reference is the package's own
`labsupport.samplers.DPMSolverSampler`, which notebook 07 compares with DDIM and Heun.
"""
from ..samplers.dpm_solver import DPMSolverSampler

__all__ = ["DPMSolverPlusPlus"]


class DPMSolverPlusPlus(DPMSolverSampler):
    """DPM-Solver++(2M) under the name notebook 07 uses: `dpm_solver_step(x_t, t, s, x0_hat, x0_prev, t_prev)`
    and `sample(shape, num_steps, timesteps=, x_T=, generator=, ...)`, as in DPMSolverSampler."""
