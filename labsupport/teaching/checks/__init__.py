"""Self-checks for the lab's TODO cells, and the catalog of known mistakes the grader shares.

In a notebook, after a TODO cell:

    import labsupport.teaching.checks as check
    check.ddpm_sampler(DDPMSampler)                        # ✓ / precise ✗ / "not done yet", per method
    Sampler = check.or_reference(DDPMSampler, "ddpm_sampler")   # yours if it passes, else the reference

For the grader and tests: `PIECES` (what each piece defines and how it is checked), `cases`,
`call_student`, `reference_output`, `compare`, `MISTAKES`, `find_mistake`, `explained_mistakes`.
A new piece adds one module like ddpm_sampler.py: its cases, its known wrong variants (`Mistake`s,
written on labsupport.maths with one visible change; slips that several pieces share are in
slips.py) and a `register(Piece(..., mistakes={method: [...]}))`, which also files the variants in
the one catalog (catalog.py); then it is imported here.
"""
from .trained_model_analyzer import trained_model_analyzer
from .compare import Comparison, compare
from .core import (PIECES, Case, MethodSpec, Piece, Report, call_student, describe_exception, last_report,
                   or_reference, passed, reference_output, register, run_piece)
from .ddim_sampler import ddim_sampler
from .ddpm_sampler import ddpm_sampler
from .forward_process import forward_process
from .catalog import MISTAKES, Mistake, explained_mistakes, find_mistake, find_mistakes, mistakes_for

__all__ = [
    "forward_process", "trained_model_analyzer", "ddpm_sampler", "ddim_sampler", "or_reference", "passed",
    "last_report", "run_piece", "cases", "call_student", "reference_output", "compare", "Comparison", "MISTAKES",
    "Mistake", "find_mistake", "find_mistakes", "explained_mistakes", "mistakes_for", "PIECES", "Piece", "MethodSpec", "Case", "Report",
    "register", "describe_exception",
]


def cases(piece: str, method: str) -> list[Case]:
    """The generated cases the self-check runs for `piece`.`method` (inputs as the piece's module documents them)."""
    if piece not in PIECES:
        raise ValueError(f"unknown piece {piece!r}; known pieces: {sorted(PIECES)}")
    return PIECES[piece].method(method).cases()

# notebooks 04-06: their pieces register on import (stochasticity_controller.py, cfg_guidance.py, sampling_optimizer.py)
from .cfg_guidance import cfg_guidance  # noqa: E402
from .classifier_guidance import classifier_guidance  # noqa: E402
from .few_step_solver import few_step_solver  # noqa: E402
from .sampling_optimizer import sampling_optimizer  # noqa: E402
from .stochasticity_controller import stochasticity_controller  # noqa: E402

# notebooks 04-06's part of the one catalog (the same dicts as in MISTAKES)
MISTAKES_LATER = {p: MISTAKES[p] for p in ("stochasticity_controller", "cfg_guidance", "classifier_guidance",
                                           "sampling_optimizer", "few_step_solver")}
__all__ += ["stochasticity_controller", "cfg_guidance", "classifier_guidance", "sampling_optimizer",
            "few_step_solver", "MISTAKES_LATER"]
