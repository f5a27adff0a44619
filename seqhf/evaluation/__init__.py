"""Figures a run reports: classification and LM metrics, the classic baselines (TF-IDF + logistic
regression, a Kneser-Ney character n-gram), dynamic evaluation and the char LM's extra evaluations."""
