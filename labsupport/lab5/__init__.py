"""The reference implementations of the Lab 5 pieces, one module per piece id (the TODO cells' ids).

    forward_process           ForwardProcessImpl              notebook 01
    trained_model_analyzer    TrainedModelAnalyzer            notebook 02
    ddpm_sampler              DDPMSampler (the package's)     notebook 02
    ddim_sampler              DDIMSampler (the package's)     notebook 03
    stochasticity_controller  StochasticityController         notebook 04
    cfg_guidance              cfg_blend, sample_with_guidance notebook 05
    classifier_guidance       classifier_guided_noise         notebook 05 (bonus)
    sampling_optimizer        SamplingOptimizer               notebook 06
    few_step_solver           DPMSolverPlusPlus               notebook 07 (bonus)

Each is written on `labsupport.maths`. The self-checks compare students' code with these; the
grader never lets a graded method's code reach them.
"""
