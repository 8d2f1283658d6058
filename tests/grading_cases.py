"""Submissions for tests/test_grading.py, generated from the source notebooks.

SEEDED maps every entry of the mistake catalog, (piece, method, index in MISTAKES[piece][method]),
to the edit of the solution that makes it: a list of (old, new) replacements inside that method's
code (or inside the function, for the pieces made of functions). `seeded_notebooks` packs one bug
per graded method into each notebook; the grader's isolation keeps them apart.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from labsupport.teaching.checks import MISTAKES
from labsupport.teaching.release import release_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0*.ipynb"))}
NOTEBOOK_OF = {"forward_process": "01", "trained_model_analyzer": "02", "ddpm_sampler": "02", "ddim_sampler": "03",
               "stochasticity_controller": "04", "cfg_guidance": "05", "sampling_optimizer": "06",
               "classifier_guidance": "05", "few_step_solver": "07"}


def source(number: str):
    return nbformat.read(NOTEBOOKS[number], as_version=4)


def todo_cells(nb, piece: str) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("labsupport", {}).get("piece") == piece]


def _region(text: str, method: str) -> tuple[int, int]:
    """Start and end of `def method` (a method or a top-level function) in a cell's source."""
    m = re.search(rf"^(\s*)def {method}\(", text, re.M)
    if m is None:
        raise KeyError(method)
    indent = len(m.group(1))
    nxt = re.compile(rf"^\s{{0,{indent}}}(?:@|def |class )", re.M)
    end = nxt.search(text, m.end())
    return m.start(), end.start() if end else len(text)


def _solution_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    while True:
        a = text.find("### BEGIN SOLUTION", pos, end)
        if a < 0:
            return spans
        b = text.find("### END SOLUTION", a, end)
        spans.append((a, b))
        pos = b


def edit_method(nb, piece: str, method: str, edits: list[tuple[str, str]]):
    """A copy of `nb` with each `old`, found exactly once in the solution of `method`, replaced by `new`."""
    nb = copy.deepcopy(nb)
    for old, new in edits:
        for cell in todo_cells(nb, piece):
            try:
                a, b = _region(cell.source, method)
            except KeyError:
                continue
            hits = [(x, y) for x, y in _solution_spans(cell.source, a, b) if old in cell.source[x:y]]
            if len(hits) != 1 or cell.source[hits[0][0]:hits[0][1]].count(old) != 1:
                raise AssertionError(f"{piece}.{method}: {old!r} is not in its solution exactly once")
            x, y = hits[0]
            cell.source = cell.source[:x] + cell.source[x:y].replace(old, new) + cell.source[y:]
            break
        else:
            raise AssertionError(f"{piece}.{method} not found")
    return nb


# -- building blocks shared by several methods -----------------------------------------------------
STD = "abar.sqrt() * x_start + (1 - abar).sqrt() * noise"
NOISING = {  # name -> (table read as abar, expression)
    "alpha_for_abar": ("alphas", STD),
    "missing_sqrt": ("alphas_cumprod", "abar * x_start + (1 - abar) * noise"),
    "variance_for_std": ("alphas_cumprod", "abar.sqrt() * x_start + (1 - abar) * noise"),
    "abar_for_sqrt_abar": ("alphas_cumprod", "abar * x_start + (1 - abar).sqrt() * noise"),
    "one_minus_sqrt": ("alphas_cumprod", "abar.sqrt() * x_start + (1 - abar.sqrt()) * noise"),
    "swapped_coefficients": ("alphas_cumprod", "(1 - abar).sqrt() * x_start + abar.sqrt() * noise"),
    "beta_for_noise": ("alphas_cumprod", "abar.sqrt() * x_start + lab.extract(self.schedule.betas, t, x_start.shape)"
                                         ".sqrt() * noise"),
    "off_by_one_timestep": ("alphas_cumprod_prev", STD),
}
ANALYZER_X_T = {  # the noising mistakes as the analyzer's line x_t = ... would have them
    "alpha_for_abar": "x_t = self.schedule.alphas[t].sqrt() * x0 + (1 - self.schedule.alphas[t]).sqrt() * eps",
    "missing_sqrt": "x_t = abar[t] * x0 + (1 - abar[t]) * eps",
    "one_minus_sqrt": "x_t = abar[t].sqrt() * x0 + (1 - abar[t].sqrt()) * eps",
    "swapped_coefficients": "x_t = (1 - abar[t]).sqrt() * x0 + abar[t].sqrt() * eps",
    "off_by_one_timestep": "x_t = self.schedule.alphas_cumprod_prev[t].sqrt() * x0 + "
                           "(1 - self.schedule.alphas_cumprod_prev[t]).sqrt() * eps",
}
X0 = {  # x̂0 mistakes: (table read as ab, expression in {x}, {e} and ab)
    "alpha_for_abar": ("alphas", "({x} - (1 - ab).sqrt() * {e}) / ab.sqrt()"),
    "missing_sqrt_divisor": ("alphas_cumprod", "({x} - (1 - ab).sqrt() * {e}) / ab"),
    "missing_sqrt_noise": ("alphas_cumprod", "({x} - (1 - ab) * {e}) / ab.sqrt()"),
    "multiplied": ("alphas_cumprod", "({x} - (1 - ab).sqrt() * {e}) * ab.sqrt()"),
    "plus_sign": ("alphas_cumprod", "({x} + (1 - ab).sqrt() * {e}) / ab.sqrt()"),
    "parentheses": ("alphas_cumprod", "{x} - (1 - ab).sqrt() * {e} / ab.sqrt()"),
    "beta_for_noise": ("alphas_cumprod", "({x} - lab.extract(self.schedule.betas, t, {x}.shape).sqrt() * {e}) / ab.sqrt()"),
    "off_by_one_timestep": ("alphas_cumprod_prev", "({x} - (1 - ab).sqrt() * {e}) / ab.sqrt()"),
}
MEAN = {  # posterior-mean mistakes, in alpha, abar, x_t and EPS
    "abar_in_prefactor": "(x_t - (1 - alpha) / (1 - abar).sqrt() * EPS) / abar.sqrt()",
    "abar_in_noise_numerator": "(x_t - (1 - abar) / (1 - abar).sqrt() * EPS) / alpha.sqrt()",
    "missing_sqrt_denominator": "(x_t - (1 - alpha) / (1 - abar) * EPS) / alpha.sqrt()",
    "missing_sqrt_prefactor": "(x_t - (1 - alpha) / (1 - abar).sqrt() * EPS) / alpha",
    "missing_prefactor": "x_t - (1 - alpha) / (1 - abar).sqrt() * EPS",
    "plus_sign": "(x_t + (1 - alpha) / (1 - abar).sqrt() * EPS) / alpha.sqrt()",
    "prefactor_on_noise_only": "x_t - (1 - alpha) / (1 - abar).sqrt() * EPS / alpha.sqrt()",
    "off_by_one_timestep": "(x_t - (1 - alpha) / (1 - abar).sqrt() * EPS) / alpha.sqrt()",
}
MEAN_RETURN = "return (x_t - (1 - alpha) / (1 - abar).sqrt() * predicted_noise) / alpha.sqrt()"
MEAN_TABLES = ("        alpha = lab.extract(s.alphas, t, x_t.shape)\n"
               "        abar = lab.extract(s.alphas_cumprod, t, x_t.shape)\n")
ROLLED = ("        alpha = lab.extract(s.alphas.roll(1), t, x_t.shape)\n"
          "        abar = lab.extract(s.alphas_cumprod.roll(1), t, x_t.shape)\n")
STEP_MEAN = "mean = self.compute_posterior_mean(x_t, t, eps)"
STEP_RETURN = "return mean + self.compute_posterior_variance(t).sqrt() * z"
DDIM_X0 = "x0_hat = self.predict_x0_from_eps(x_t, eps, t)"
QUAD = ("            ts = ((T - 1) * (i / (n - 1)) ** 2).round().long()\n"
        "            for k in range(1, n):\n"
        "                ts[k] = max(int(ts[k]), int(ts[k - 1]) + 1)\n")
VAR_RETURN = "return eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)"


def _noised_add_noise(name):
    table, expr = NOISING[name]
    return [("abar = lab.extract(self.schedule.alphas_cumprod, t, x_start.shape)",
             f"abar = lab.extract(self.schedule.{table}, t, x_start.shape)"),
            (f"return {STD}", f"return {expr}")]


def _noised_trajectory(name):
    table, expr = NOISING[name]
    return [("        return torch.stack([self.add_noise(x_start, int(t), noise) for t in timesteps])",
             "        frames = []\n        for t in timesteps:\n            t = int(t)\n"
             f"            abar = lab.extract(self.schedule.{table}, t, x_start.shape)\n"
             f"            frames.append({expr})\n        return torch.stack(frames)")]


def _x0(name, x="x_t", e="eps", target="return ", indent=8, close=""):
    """The lines computing x̂0 with mistake `name`: ab = ᾱ (or the wrong table), then `target` + formula."""
    table, expr = X0[name]
    return (f"ab = lab.extract(self.schedule.{table}, t, {x}.shape)\n" + " " * indent
            + target + expr.format(x=x, e=e) + close)


def _mean_in_step(name):
    tables = ("lab.extract(self.schedule.alphas.roll(1), t, x_t.shape)", "lab.extract(self.schedule.alphas_cumprod"
              ".roll(1), t, x_t.shape)") if name == "off_by_one_timestep" else (
              "lab.extract(self.schedule.alphas, t, x_t.shape)", "lab.extract(self.schedule.alphas_cumprod, t, x_t.shape)")
    return [(STEP_MEAN, f"alpha, abar = {tables[0]}, {tables[1]}\n        mean = {MEAN[name].replace('EPS', 'eps')}")]


def _quad(new: str):
    return [(QUAD, new)]


def _seeded() -> dict[tuple[str, str, str], list[tuple[str, str]]]:
    """(piece, method, explanation) -> edits; explanations tell apart the entries that share a name."""
    out: dict[tuple[str, str, str], list] = {}

    def add(piece, method, name, edits, prefix=""):
        matches = [m for m in MISTAKES[piece][method] if m.name == name and m.explanation.startswith(prefix)]
        if prefix == "":
            matches = [m for m in matches if not m.explanation.startswith("(")] or matches
        assert len(matches) == 1, (piece, method, name, prefix)
        out[(piece, method, matches[0].explanation)] = edits

    # forward_process
    for name in NOISING:
        add("forward_process", "add_noise", name, _noised_add_noise(name))
        add("forward_process", "demonstrate_forward_trajectory", name, _noised_trajectory(name), "(in every frame)")
    add("forward_process", "add_noise", "ignored_noise_argument", [(
        "        if noise is None:\n            noise = torch.randn(x_start.shape, generator=generator, "
        "device=x_start.device, dtype=x_start.dtype)\n        abar",
        "        noise = torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)\n"
        "        abar")])
    traj = "        return torch.stack([self.add_noise(x_start, int(t), noise) for t in timesteps])"
    add("forward_process", "demonstrate_forward_trajectory", "chained_frames", [(traj, (
        "        frames, x = [], x_start\n        for t in timesteps:\n            x = self.add_noise(x, int(t), noise)\n"
        "            frames.append(x)\n        return torch.stack(frames)"))])
    add("forward_process", "demonstrate_forward_trajectory", "stacked_on_wrong_axis",
        [(traj, traj.replace("timesteps])", "timesteps], dim=1)"))])
    add("forward_process", "demonstrate_forward_trajectory", "fresh_noise_per_frame",
        [(traj, traj.replace("int(t), noise)", "int(t))"))])

    # trained_model_analyzer
    a = "analyze_noise_prediction_quality"
    err = "errors.append(((self.predict_eps(x_t, t) - eps) ** 2).mean())"
    add("trained_model_analyzer", a, "rmse_not_mse", [(err, err.replace(".mean())", ".mean().sqrt())"))])
    add("trained_model_analyzer", a, "sum_not_mean", [(err, err.replace(".mean())", ".sum())"))])
    add("trained_model_analyzer", a, "absolute_error",
        [(err, "errors.append((self.predict_eps(x_t, t) - eps).abs().mean())")])
    add("trained_model_analyzer", a, "compared_with_image", [(err, err.replace("- eps)", "- x0)"))])
    x_t_line = "x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps"
    v = "visualize_noise_predictions"
    for name, line in ANALYZER_X_T.items():
        add("trained_model_analyzer", a, name, [(x_t_line, line)], "(when noising x_clean)")
        add("trained_model_analyzer", v, name, [(x_t_line, line)], "(when noising x_clean)")
    x0_line = 'rows["x0_hat"].append((x_t - (1 - abar[t]).sqrt() * eps_pred) / abar[t].sqrt())'
    add("trained_model_analyzer", v, "x0_from_true_noise", [(x0_line, x0_line.replace("eps_pred)", "eps)"))])
    for name in X0:
        add("trained_model_analyzer", v, name, [(x0_line, _x0(name, e="eps_pred", target='rows["x0_hat"].append(',
                                                              indent=12, close=")"))], "(in x̂0)")

    # ddpm_sampler
    m = "compute_posterior_mean"
    for name, expr in MEAN.items():
        edits = [(MEAN_RETURN, "return " + expr.replace("EPS", "predicted_noise"))]
        if name == "off_by_one_timestep":
            edits = [(MEAN_TABLES, ROLLED)]
        add("ddpm_sampler", m, name, edits)
        add("ddpm_sampler", "ddpm_step", name, _mean_in_step(name), "(posterior mean inside the step)")
    add("ddpm_sampler", m, "x0_not_clipped", [("if self.clip_x0:", "if False:")])
    add("ddpm_sampler", m, "clip_coefficients_swapped", [
        ("posterior_mean_coef1, t, x_t.shape) * x0_hat", "posterior_mean_coef2, t, x_t.shape) * x0_hat"),
        ("posterior_mean_coef2, t, x_t.shape) * x_t)", "posterior_mean_coef1, t, x_t.shape) * x_t)")])
    add("ddpm_sampler", "ddpm_step", "x0_not_clipped", [(STEP_MEAN, (
        "alpha, abar = lab.extract(self.schedule.alphas, t, x_t.shape), lab.extract(self.schedule.alphas_cumprod, t, "
        "x_t.shape)\n        mean = (x_t - (1 - alpha) / (1 - abar).sqrt() * eps) / alpha.sqrt()"))],
        "(posterior mean inside the step)")
    add("ddpm_sampler", "ddpm_step", "clip_coefficients_swapped", [(STEP_MEAN, (
        "if self.clip_x0:\n            x0c = self.predict_x0(x_t, t, eps).clamp(-1, 1)\n"
        "            mean = (lab.extract(self.schedule.posterior_mean_coef2, t, x_t.shape) * x0c\n"
        "                    + lab.extract(self.schedule.posterior_mean_coef1, t, x_t.shape) * x_t)\n"
        "        else:\n            mean = self.compute_posterior_mean(x_t, t, eps)"))], "(posterior mean inside the step)")
    var = "compute_posterior_variance"
    lower = "return s.betas[t] * (1 - s.alphas_cumprod_prev[t]) / (1 - s.alphas_cumprod[t])"
    add("ddpm_sampler", var, "upper_for_lower", [(lower, "return s.betas[t]")])
    add("ddpm_sampler", var, "lower_for_upper", [("            return s.betas[t]\n", f"            {lower}\n")])
    add("ddpm_sampler", var, "std_not_variance", [("            return s.betas[t]\n", "            return s.betas[t].sqrt()\n"),
                                                  (lower, f"return ({lower[7:]}).sqrt()")])
    add("ddpm_sampler", var, "fraction_flipped",
        [(lower, "return s.betas[t] * (1 - s.alphas_cumprod[t]) / (1 - s.alphas_cumprod_prev[t])")])
    add("ddpm_sampler", var, "wraparound_at_t0",
        [(lower, "return s.betas[t] * (1 - s.alphas_cumprod[t - 1]) / (1 - s.alphas_cumprod[t])")])
    add("ddpm_sampler", var, "alpha_for_abar", [(lower, "return s.betas[t] * (1 - s.alphas[t - 1]) / (1 - s.alphas[t])")])
    st = "ddpm_step"
    add("ddpm_sampler", st, "noise_at_final_step", [("        if t == 0:\n            return mean\n", "")])
    add("ddpm_sampler", st, "variance_as_std", [(STEP_RETURN, STEP_RETURN.replace("(t).sqrt()", "(t)"))])
    add("ddpm_sampler", st, "no_noise", [(STEP_RETURN, "return mean")])
    add("ddpm_sampler", st, "returned_x0_hat", [(STEP_MEAN, "return self.predict_x0(x_t, t, eps)")])
    add("ddpm_sampler", st, "upper_for_lower", [(STEP_RETURN, "return mean + self.schedule.betas[t].sqrt() * z")],
        "(σ_t² inside the step)")
    add("ddpm_sampler", st, "lower_for_upper", [(STEP_RETURN, "return mean + self.schedule.posterior_variance[t]"
                                                              ".sqrt() * z")], "(σ_t² inside the step)")
    add("ddpm_sampler", st, "std_squared_twice", [(STEP_RETURN, STEP_RETURN.replace(".sqrt()", ".sqrt().sqrt()"))])
    loop_step = "x = self.ddpm_step(x, t, generator=generator)"
    add("ddpm_sampler", "sample", "noise_at_final_step", [(loop_step, loop_step + (
        "\n            if t == 0:\n                x = x + self.compute_posterior_variance(t).sqrt() * "
        "self.randn(x.shape, generator)"))])
    add("ddpm_sampler", "sample", "skipped_last_step", [("range(self.T), progress", "range(self.T - 1), progress")])
    add("ddpm_sampler", "sample", "ascending_timesteps", [("t = self.T - 1 - i", "t = i")])
    add("ddpm_sampler", "sample", "ignored_x_T", [("self.initial_noise(shape, x_T, generator)",
                                                   "self.initial_noise(shape, None, generator)")])
    add("ddpm_sampler", "sample", "no_noise",
        [(loop_step, "x = self.compute_posterior_mean(x, t, self.predict_eps(x, t))")])

    # ddim_sampler
    p, ret = "ddim_sampler", "        abar = lab.extract(self.schedule.alphas_cumprod, t, x_t.shape)\n" \
                             "        return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()"
    for name in X0:
        add(p, "predict_x0_from_eps", name, [(ret, "        " + _x0(name))])
        add(p, "ddim_step", name, [(DDIM_X0, _x0(name, target="x0_hat = "))], "(x̂0 inside the step)")
    renoise = "x_s = a_s.sqrt() * x0_hat + (1 - a_s - sigma ** 2).sqrt() * eps"
    sigma = "sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()"
    a_s = "a_s = abar[s] if s >= 0 else torch.ones_like(a_t)"
    add(p, "ddim_step", "abar_t_for_abar_s", [(renoise, "x_s = a_t.sqrt() * x0_hat + (1 - a_t - sigma ** 2).sqrt() * eps")])
    add(p, "ddim_step", "alpha_for_abar", [("abar = self.schedule.alphas_cumprod", "abar = self.schedule.alphas"),
                                           (DDIM_X0, "x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()")])
    add(p, "ddim_step", "s_minus_one_wraps", [(a_s, "a_s = abar[s]"),
                                              (sigma, sigma + " if eta > 0 else torch.zeros(())")])
    add(p, "ddim_step", "s_minus_one_wraps_nan", [(a_s, "a_s = abar[s]")])
    add(p, "ddim_step", "s_minus_one_as_zero", [(a_s, "a_s = abar[s] if s >= 0 else abar[0]")])
    add(p, "ddim_step", "missing_sqrt", [(renoise, "x_s = a_s * x0_hat + (1 - a_s - sigma ** 2) * eps")])
    add(p, "ddim_step", "direction_ignores_sigma", [(renoise, "x_s = a_s.sqrt() * x0_hat + (1 - a_s).sqrt() * eps")])
    add(p, "ddim_step", "sigma_not_square_rooted", [(sigma, sigma[:-len(".sqrt()")])])
    add(p, "ddim_step", "eta_squared", [(sigma, sigma.replace("eta *", "eta ** 2 *"))])
    add(p, "ddim_step", "one_step_sigma", [(sigma, "sigma = eta * self.schedule.posterior_variance[t].sqrt()")])
    add(p, "ddim_step", "no_noise", [("x_s = x_s + sigma * z", "x_s = x_s")])
    add(p, "ddim_step", "x0_not_clipped", [("if self.clip_x0:", "if False:")])
    add(p, "ddim_step", "eps_not_recomputed", [("            eps = (x_t - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()\n", "")])
    add(p, "ddim_step", "direction_missing_sqrt", [(renoise, "x_s = a_s.sqrt() * x0_hat + (1 - a_s - sigma ** 2) * eps")])
    add(p, "ddim_step", "sigma_without_eta", [(sigma, sigma.replace("eta * ", ""))])
    add(p, "ddim_step", "eta_ignored", [(sigma, sigma.replace("eta * ", "")), ("if eta > 0 and s >= 0:", "if s >= 0:")])
    add(p, "sample", "no_final_step", [("range(len(ts)), progress", "range(len(ts) - 1), progress")])
    add(p, "sample", "final_step_to_zero", [("targets = ts[1:] + [-1]", "targets = ts[1:] + [0]")])
    add(p, "sample", "ignored_x_T", [("self.initial_noise(shape, x_T, generator)", "self.initial_noise(shape, None, generator)")])
    add(p, "sample", "ignored_timesteps", [("if timesteps is None:", "if True:")])
    c = "create_timestep_schedule"
    uni = "ts = (i * (T - 1) / (n - 1)).round().long()"
    add(p, c, "ascending", [("return ts.flip(0)", "return ts")])
    add(p, c, "n_plus_one", [(uni, "ts = torch.linspace(T - 1, 0, n + 1, dtype=torch.float64).round().long().flip(0)")])
    add(p, c, "truncated", [(uni, "ts = torch.linspace(T - 1, 0, n, dtype=torch.float64).long().flip(0)")])
    add(p, c, "starts_at_T", [(uni, "ts = torch.linspace(T, 0, n, dtype=torch.float64).round().long().flip(0)")])
    add(p, c, "fixed_stride", [(uni, "ts = torch.arange(0, T, max(1, T // n))")])
    add(p, c, "dense_at_noisy_end", _quad("            ts = ((T - 1) * (1 - (i / (n - 1)) ** 2)).round().long().flip(0)\n"))
    add(p, c, "from_T", _quad("            ts = torch.tensor(sorted({max(0, int(T * (1 - (k / n) ** 2))) for k in range(n)}))\n"))
    add(p, c, "collisions_kept", _quad("            ts = ((T - 1) * (i / (n - 1)) ** 2).round().long()\n"))
    add(p, c, "collisions_dropped", _quad("            ts = ((T - 1) * (i / (n - 1)) ** 2).round().long().unique(sorted=True)\n"))
    add(p, c, "trailing_no_minus_one", [("ts = ((i + 1) * T / n).round().long() - 1", "ts = ((i + 1) * T / n).round().long()")])

    # stochasticity_controller
    p, m = "stochasticity_controller", "compute_stochastic_variance"
    core = "(1 - a_s) / (1 - a_t) * (1 - a_t / a_s)"
    add(p, m, "eta_not_squared", [(VAR_RETURN, f"return eta * {core}")])
    add(p, m, "returned_sigma", [(VAR_RETURN, f"return eta * ({core}).clamp(min=0).sqrt()")])
    add(p, m, "missing_eta", [(VAR_RETURN, f"return {core}")])
    add(p, m, "ratio_flipped", [(VAR_RETURN, "return eta ** 2 * (1 - a_t) / (1 - a_s) * (1 - a_t / a_s)")])
    add(p, m, "abar_ratio_flipped", [(VAR_RETURN, "return eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_s / a_t)")])
    add(p, m, "missing_second_factor", [(VAR_RETURN, "return eta ** 2 * (1 - a_s) / (1 - a_t)")])
    lookup = "a_t, a_s = self.alpha_bar(t), self.alpha_bar(s)"
    add(p, m, "s_minus_one_wraps", [(lookup, "a_t, a_s = self.alpha_bar(t), self.schedule.alphas_cumprod[s]")])
    add(p, m, "alpha_for_abar", [(lookup, "alphas = torch.cat([torch.ones(1), self.schedule.alphas])\n"
                                          "        a_t, a_s = alphas[torch.as_tensor(t) + 1], alphas[torch.as_tensor(s) + 1]")])
    add(p, m, "one_step_variance",
        [(VAR_RETURN, "return eta ** 2 * self.schedule.posterior_variance[torch.as_tensor(t).long()]")])
    e = "analyze_eta_effects"
    runs = "runs = start.expand(*shape).contiguous()"
    add(p, e, "runs_do_not_share_x_T", [(runs, "runs = self.initial_noise(shape, None, generator)")])
    add(p, e, "new_x_T_per_eta", [
        ("start = self.initial_noise((1, *shape[1:]), x_T, generator)", "start = None"),
        (runs, "runs = None"),
        ("x_T=runs,", "x_T=self.randn((1, *shape[1:]), generator).expand(*shape).contiguous(),")])
    spread = "spread = samples.std(dim=1).mean(dim=(1, 2, 3))"
    add(p, e, "spread_as_variance", [(spread, "spread = samples.var(dim=1).mean(dim=(1, 2, 3))")])
    add(p, e, "spread_biased_std", [(spread, "spread = samples.std(dim=1, unbiased=False).mean(dim=(1, 2, 3))")])
    add(p, e, "spread_over_pixels", [(spread, "spread = samples.flatten(2).std(dim=2).mean(dim=1)")])
    add(p, e, "samples_transposed", [('"samples": samples,', '"samples": samples.transpose(0, 1),')])

    # cfg_guidance
    p, blend = "cfg_guidance", "return eps_uncond + guidance_scale * (eps_cond - eps_uncond)"
    for name, expr in {"swapped_roles": "eps_cond + guidance_scale * (eps_uncond - eps_cond)",
                       "paper_convention": "eps_cond + guidance_scale * (eps_cond - eps_uncond)",
                       "missing_base": "guidance_scale * (eps_cond - eps_uncond)",
                       "scale_on_cond_only": "eps_uncond + guidance_scale * eps_cond",
                       "sign_flipped": "eps_uncond - guidance_scale * (eps_cond - eps_uncond)",
                       "normalized_average": "(eps_uncond + guidance_scale * eps_cond) / (1 + guidance_scale)"}.items():
        add(p, "guided_noise", name, [(blend, "return " + expr)])
    s, call = "sample_with_guidance", "eps = guided_noise(eps_cond, eps_uncond, guidance_scale)"
    first = "        eps_cond, eps_uncond = model("
    add(p, s, "guidance_ignored", [(call, "eps = eps_cond")])
    add(p, s, "unconditional_only", [(call, "eps = eps_uncond")])
    add(p, s, "halves_swapped", [("eps_cond, eps_uncond = model(", "eps_uncond, eps_cond = model(")])
    add(p, s, "paper_convention", [(call, "eps = eps_cond + guidance_scale * (eps_cond - eps_uncond)")], "(in the blend)")
    add(p, s, "label_zero_as_null", [("torch.cat([labels, null])", "torch.cat([labels, torch.zeros_like(labels)])")])
    add(p, s, "no_final_step", [(first, "        if i + 1 == len(ts):\n            break\n" + first)])
    add(p, s, "ignored_x_T", [(first, "        if i == 0:\n            x = torch.randn(x.shape, generator=generator)\n"
                                      + first)])
    add(p, s, "loop_index_as_t", [("model(torch.cat([x, x]), t,", "model(torch.cat([x, x]), i,")])

    # sampling_optimizer
    p, m = "sampling_optimizer", "cached_noise_schedule_sampling"
    a_s = "a_s = ddim_sampler.alpha_bar(s_all).double()"
    sig = "sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()"
    add(p, m, "s_minus_one_wraps", [(a_s, "a_s = ddim_sampler.schedule.alphas_cumprod[s_all].double()"),
                                    (sig, sig.replace(".sqrt()", ".clamp(min=0).sqrt()"))])
    add(p, m, "final_step_to_zero", [("ts[1:] + [-1]", "ts[1:] + [0]")])
    add(p, m, "direction_ignores_sigma", [("(1 - a_s - sigma ** 2).sqrt()", "(1 - a_s).sqrt()")])
    add(p, m, "eta_squared", [(sig, sig.replace("eta *", "eta ** 2 *"))])
    add(p, m, "missing_sqrt", [("a_s.sqrt(), (1 - a_s - sigma ** 2).sqrt()", "a_s, (1 - a_s - sigma ** 2)")])
    add(p, m, "ignored_x_T", [("        t_all = torch.tensor(", "        x = ddim_sampler.initial_noise(shape, None, "
                                                                 "generator)\n        t_all = torch.tensor(")])
    b, gens = "batch_sampling_with_memory_management", "generators = sample_generators(seed, range(start, stop), self.device)"
    add(p, b, "generator_per_chunk", [(gens, "generators = torch.Generator().manual_seed(seed + start // chunk)")])
    add(p, b, "one_generator_for_all", [("chunks = []", "chunks = []\n        shared = torch.Generator().manual_seed(seed)"),
                                        (gens, "generators = shared")])
    add(p, b, "indices_restart_per_chunk", [(gens, gens.replace("range(start, stop)", "range(stop - start)"))])
    add(p, b, "dropped_last_chunk", [("range(0, total_samples, chunk)", "range(0, total_samples - total_samples % chunk, chunk)")])
    return out


SEEDED = _seeded()


def seeded_notebooks(max_rounds: int | None = None) -> list[tuple[str, object, dict[tuple[str, str], str]]]:
    """[(name, notebook, {(piece, method): explanation})]: round r seeds the r-th bug of every method."""
    by_method: dict[tuple[str, str], list[tuple[str, list]]] = {}
    for (piece, method, explanation), edits in SEEDED.items():
        by_method.setdefault((piece, method), []).append((explanation, edits))
    out = []
    for number in sorted(NOTEBOOKS):
        methods = {k: v for k, v in by_method.items() if NOTEBOOK_OF[k[0]] == number}
        rounds = max((len(v) for v in methods.values()), default=0)
        for r in range(rounds if max_rounds is None else min(rounds, max_rounds)):
            nb, expect = source(number), {}
            for (piece, method), bugs in methods.items():
                if r < len(bugs):
                    explanation, edits = bugs[r]
                    nb = edit_method(nb, piece, method, edits)
                    expect[(piece, method)] = explanation
            out.append((f"bug-{number}-r{r:02d}", nb, expect))
    return out


def student_edition(number: str):
    return release_notebook(source(number))
