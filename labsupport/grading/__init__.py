"""Grading Lab 5 submissions fairly and repeatably (docs/grading.md).

    batch.grade_folder      find, execute, probe and score every notebook of a folder
    report.write_reports    grades.csv, feedback/<id>.md, summary.json, Gradescope results
    rubric.load_rubric      the editable rubric.toml
    cli.add_parser          the `grade` subcommand

Student code runs only in the sandbox's processes (sandbox/, worker.py, with the view of view.py); scoring (score.py) reads
plain numbers back. Nothing is imported here, so the probe starts without the grader's modules.
"""
__all__: list[str] = []
