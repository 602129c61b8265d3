"""Campaign planning and reading: A/B design, analysis, uplift models and reports.

Modules: ``design`` (sample size, MDE), ``stats`` (Welch, delta method, CUPED, SRM, Holm),
``analysis`` (:func:`~campaigns.analysis.analyze`), ``uplift`` (T-learner, class
transformation, Qini / AUUC / uplift@k), ``io`` (tables and the serving event log),
``report`` (self-contained HTML), ``validation`` (simulation checks), ``cli`` (``tailor campaign``).
"""
