"""What the notebooks use to teach: self-checks, figures, sliders, notebook helpers, the student edition.

    checks/   the self-check after each TODO cell, one module per Lab 5 piece with its known mistakes
    plots     the notebooks' figures          widgets   their sliders (ipywidgets, with a static image)
    notebook  setup, fast mode, timer, team   release   the student edition and the student's workspace
    doctor    `labsupport doctor`: is this machine ready for the lab
"""
