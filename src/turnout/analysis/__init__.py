"""Experiment analysis: compare variants with sound statistics (needs `pip install "turnout[stats]"`).

from turnout.analysis import Means, Proportions, compare, bayesian, srm, adjust, sample_size

r = compare(Proportions(n=1000, successes=120), Proportions(n=1000, successes=150))
r.effect, r.ci, r.p_value, r.significant
"""

from turnout.analysis.adjust import adjust
from turnout.analysis.bayesian import BayesianResult, bayesian
from turnout.analysis.comparison import Comparison, compare
from turnout.analysis.power import power, sample_size
from turnout.analysis.report import (
    MetricResult,
    Report,
    VariantResult,
    Verdict,
    default_rule,
    report,
    running_experiments,
)
from turnout.analysis.srm import srm
from turnout.analysis.summaries import Means, Proportions, Summary

__all__ = [
    "BayesianResult",
    "Comparison",
    "Means",
    "MetricResult",
    "Proportions",
    "Report",
    "Summary",
    "VariantResult",
    "Verdict",
    "adjust",
    "bayesian",
    "compare",
    "default_rule",
    "power",
    "report",
    "running_experiments",
    "sample_size",
    "srm",
]
