"""nbgrader's configuration for a class taught with "Batch Normalization, Measured".

A course directory written by ``scripts/make_assignments.py`` loads this file from its own
``nbgrader_config.py``; so does an instructor's ``~/.jupyter/nbgrader_config.py`` on a JupyterHub
(the README's instructor section). Change the course here, for every course directory at once; the
course id comes from class/assignments.yml.
"""

import os
import sys

c = get_config()  # noqa: F821 (traitlets defines get_config in a configuration file)

# The release's stubs are the student edition's: scripts/make_assignments.py's CourseStubs takes the
# place of nbgrader's ClearSolutions in generate_assignment (one mechanism for both editions).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from make_assignments import course_preprocessors  # noqa: E402

c.GenerateAssignment.preprocessors = course_preprocessors()

# Autograding runs every cell of a lab, and some cells train: nbgrader's default of 30 s per cell would
# fail a slow or busy grading machine, so allow 10 minutes.
c.Execute.timeout = 600
