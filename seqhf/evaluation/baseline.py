"""The classic baseline every classifier is reported beside: TF-IDF features and logistic regression.

Same data, same splits, same final split as `train_classifier` (it takes the same `ClassificationData`),
so the two figures compare like for like.
"""

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
from datasets import DatasetDict

from ..data.classification import ClassificationData, load_arguments, load_classification_data
from .metrics import classification_metrics

TFIDF_METHOD = "TF-IDF (word 1-2-grams) + logistic regression"


def tfidf_logistic_regression(data: ClassificationData, *, max_features: int = 200_000, c: float = 4.0) -> dict:
    """Fit on train (word 1-2-grams, sublinear tf), evaluate on the final split; returns its figures. `data`: a
    `ClassificationData`, a dict of `load_classification_data` arguments, or the dataset's source alone."""
    if not isinstance(data, ClassificationData):
        data = load_classification_data(**load_arguments(data, "The data of the baseline"))
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    start = time.time()
    split = data.final_split
    train, final = data.splits["train"], data.splits[split]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=max_features, sublinear_tf=True,
                                 strip_accents="unicode")
    x_train = vectorizer.fit_transform(train["text"])
    x_final = vectorizer.transform(final["text"])
    y_train, y_final = np.asarray(train["labels"]), np.asarray(final["labels"])
    model = LogisticRegression(C=c, max_iter=2000)
    if data.multi_label:
        model = OneVsRestClassifier(model)
    model.fit(x_train, y_train.astype(int))
    scores = model.decision_function(x_final)
    if scores.ndim == 1:  # two classes: one score for class 1
        scores = np.stack([-scores, scores], axis=1)
    figures = classification_metrics(scores, y_final, data.label_names, per_class=True)
    return dict(method=TFIDF_METHOD, evaluated_on=split,
                examples=len(final), wall_time_s=round(time.time() - start, 1),
                **{k: v for k, v in figures.items() if k != "per_class"})


def tfidf_in_background(data: ClassificationData) -> Future | None:
    """`tfidf_logistic_regression(data)` in a forked child process, for a run to collect later; None where
    processes cannot fork (the run then fits it itself). A classifier run starts it as word2vec starts, so
    it shares the cores with word2vec instead of waiting for the end (on IMDb about 31 s of CPU).
    Forked, not spawned: a spawned child would re-run a user's script that has no `__main__` guard."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    final = data.final_split
    needed = ClassificationData(DatasetDict(train=data.splits["train"], **{final: data.splits[final]}),
                                data.label_names, data.multi_label)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    future = pool.submit(tfidf_logistic_regression, needed)
    pool.shutdown(wait=False)  # the child ends once it has answered
    return future
