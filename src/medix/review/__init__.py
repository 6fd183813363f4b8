"""Human expert review of eval runs, as the paper's doctors did it: blind pairwise preference or grading.

    medix review create --run runs/a --run runs/b --sample -o review.sqlite     build.py: sample, blind, store
    medix review serve review.sqlite --host 0.0.0.0                             app.py: the reviewers' page
    medix review report review.sqlite --html report.html --pairs expert.jsonl   report.py + stats.py

One SQLite file per set (store.py). docs/review.md walks a review with clinicians.
"""
