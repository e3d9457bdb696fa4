"""Evaluation: BEIR/TREC data, first-stage retrieval, IR metrics, and the eval/bench harnesses."""
