"""One module per chapter: what a chapter's notebook and its claim tests both compute.

A chapter's notebook shows and checks its verdicts; its claim tests (tests/test_claims_<topic>.py)
assert them over two seed sets and several arithmetic paths. Both start from the same training runs
and derive the same numbers from them, so both call the functions of the chapter's module here,
``bn_utils.chapters.<page>`` (named after the chapter's page in book/): its setup (the runs the
chapter stands on, as functions of the seeds) and its claim quantities (typed results computed from
those runs). No arithmetic is written twice, and a number the notebook prints is the number the
claim test asserts on. A chapter module uses the experiment modules (bn_utils.experiments.*) and the
core; it never imports another chapter's module (tests/test_imports.py).
"""
