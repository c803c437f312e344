"""Analysis of finished calls (`call_analysis` on the call object)."""

from voxline.analysis.post_call import DEFAULT_ANALYSIS_MODEL, SENTIMENTS, AnalysisResult, analysis_model, analyze_call

__all__ = ["DEFAULT_ANALYSIS_MODEL", "SENTIMENTS", "AnalysisResult", "analysis_model", "analyze_call"]
