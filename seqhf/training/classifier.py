"""Text classification through `transformers.Trainer`: length-bucketed batches, word vectors, evaluation.

`train_classifier` loads a dataset, builds the word tokenizer on its training texts and the model of a
preset (see `seqhf.training.presets`), trains, evaluates on the test split and leaves a folder that
`pipeline("text-classification", ...)` loads."""

import numbers
from collections.abc import Iterable
import sys
import time
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

from ..data import sources as seqdata
from ..data.classification import ClassificationData
from ..data.tokenization import tokenizer_threads, with_extra_words
from ..evaluation.baseline import (
    TFIDF_METHOD,
    tfidf_in_background,
    tfidf_logistic_regression,
)
from ..evaluation.metrics import (
    classification_metrics,
    compute_classification_metrics,
    confusion_matrix,
)
from ..hub.plots import CONFUSION_NAME, RELIABILITY_NAME, plot_confusion_matrix
from ..inference.saved_folder import check_classifier_folder
from ..utils.runtime import release_freed_memory
from . import ulmfit
from .calibration import calibrate, calibration_fields, final_calibration, fold_calibration, plot_final_reliability
from .classifier_inputs import (
    build_tokenizer,
    describe_inputs,
    encode_splits,
    label_config,
    load_data,
    load_extra_texts,
    subsample,
    tokenizer_length_limit,
)
from .classifier_trainer import ClassifierTrainer, ReleaseFreedMemory
from .common import (
    PhaseTimes,
    RunClock,
    SetupError,
    TimeBudget,
    build_model,
    finish_run,
    make_training_args,
    resume_checkpoint,
    run_record,
)
from .embeddings import (
    cached_word_vectors,
    load_embeddings,
    word_vector_settings,
    word_vector_texts,
    word_vector_workers,
)
from .ngram_pruning import drop_rare_ngrams
from .pretrained_vectors import (NO_VECTORS, expand_vocabulary, load_pretrained_vectors, rule_vectors,
                                 start_embeddings, vocabulary_words, word2vec_size)
from .own_lms import OWN_LMS, check_own_lm_options, pretrain_own_lms
from .presets import get_preset, small_data_preset
from .run_folder import disk_full_message, holds_output_folder

IMDB_LABELS = ("negative", "positive")


WORD_VECTOR_CACHE = "_cache"  # under the output folder; "_" folders are not uploaded to the Hub


@holds_output_folder
def train_classifier(data, model="lstm", output_dir="runs/classifier", *, quick=False, epochs=None,
                     max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(), baseline=True,
                     init_from=None, cpu_budget_s=None, unlabelled_data=None, word_vector_train_repeats=1, streaming=False,
                     init_from_backward=None, general_lms=None, pretrained_vectors=None, **train_overrides) -> dict:
    """Train a text classifier on `data` (a `ClassificationData`, a dict of `load_classification_data`
    arguments, or the dataset's source alone: a file, folder or Hub id) and return the results written to eval_results.json. With `baseline`, the TF-IDF + logistic
    regression baseline is fitted on the same training split and scored on the same final split beside it.
    `init_from`: a word LM folder (`seqhf train lm`) to fine-tune from, ULMFiT's way (`seqhf.training.ulmfit`);
    with `init_from_backward`, a backward LM of the same texts (`seqhf train lm --backward`), the classifier is
    bidirectional, each direction starting as its LM (`ulmfit.bidirectional_classifier_from_lms`). Without them, a
    preset that says `pretrain` (`ulmfit-small`) first trains both LMs on the training texts (`seqhf.training.own_lms`),
    from scratch, or with `general_lms` (a forward and a backward word LM of general text) fine-tuned from them.
    `cpu_budget_s`: stop training once the process has spent that many CPU seconds, data and word vectors
    included (`TimeBudget`); the best checkpoint on validation is kept as usual.
    `unlabelled_data`: `load_unlabelled_texts` arguments (a list of sources, or a dict with `sources`,
    `text_column`, `split`): text from other sources that word2vec also learns from, never labelled;
    `word_vector_train_repeats`: how many times word2vec reads the training texts (`word_vector_texts`).
    `pretrained_vectors`: word vectors of general text (a name in `pretrained_vectors.PACKAGED`, such as
    "glove-6b-50d", or a GloVe/word2vec file) that start part of each embedding row, their most frequent words
    added to the vocabulary (`seqhf.training.pretrained_vectors`); None: the small-data rule's, if any; "none": none.
    `streaming`: data larger than memory. Every phase reads the splits from their memory-mapped Arrow files a
    batch at a time (as it always does); `streaming` refuses the one step that holds every training text's
    features in memory, the TF-IDF baseline (`baseline` must be False), and records the mode.
    `train_overrides`: `TrainingArguments` fields over the preset's (e.g. `label_smoothing_factor=0.1`, which
    smooths the loss as Trainer's own does; refused for label lists)."""
    clock = RunClock()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be an integer (42 by default; it seeds the run and the validation split carved "
                        f"from train), got {seed!r} ({type(seed).__name__}).")
    check_options(epochs, word_vector_train_repeats, unlabelled_data, init_from, streaming and baseline, max_steps)
    chosen = pretrained_vectors not in (None, NO_VECTORS)  # named by the caller; None: the small-data rule's, if any
    if chosen and (init_from or general_lms):
        raise SetupError("--pretrained-vectors starts the embeddings of a new classifier; with --init-from or "
                         "--general-lm the word LMs' embeddings are the start: pass one of them.")
    pretrained, coverage = (load_pretrained_vectors(pretrained_vectors) if chosen else None), None
    if init_from_backward and not init_from:
        raise SetupError("--init-from-backward goes with --init-from (the forward LM of the same texts).")
    # Made here, so that a budget of 0 s or less is refused before the data is read; it starts counting at training.
    budget = TimeBudget(cpu_budget_s, cpu=True) if cpu_budget_s is not None else None
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("sentiment", model, quick)
    if init_from and preset.get("arch") != "lstm":
        raise SetupError(f"--init-from fine-tunes a word LSTM LM, and the {preset_name!r} preset is a {preset.get('arch')}: "
                         "use an `ulmfit*` preset (or `lstm`).")
    if chosen and preset.get("pretrain"):
        raise SetupError(f"--pretrained-vectors starts a new classifier's embeddings, and the {preset_name} preset "
                         "starts them from its own word LMs: use it with `lstm`.")
    if preset.get("pretrain") and not init_from:
        check_own_lm_options(preset_name, streaming=streaming, cpu_budget_s=cpu_budget_s, general_lms=general_lms)
    elif general_lms:
        raise SetupError("--general-lm starts the word LMs that a preset with its own LMs (`ulmfit-small`) trains "
                         "first; with --init-from, or another preset, there are none to start.")
    if not init_from and preset_name.startswith("ulmfit") and not preset.get("pretrain"):
        print(f"note: the {preset_name} preset is ULMFiT's fine-tuning recipe, and no --init-from LM was given: it "
              "trains from scratch (the card says so).")
    set_seed(seed)
    phases = PhaseTimes()
    data, extra_texts = load_inputs(data, preset, seed, unlabelled_data, phases)
    subsample(data, preset, seed)
    if data.multi_label and train_overrides.get("label_smoothing_factor"):
        raise SetupError("label_smoothing_factor smooths a softmax over one label per text; this dataset has label "
                         "lists (one sigmoid a label): train it without label smoothing.")
    preset, small_data = small_data_preset(preset_name, preset, len(data.splits["train"]), quick, pretrained_vectors)
    if pretrained_vectors is None and preset.get("pretrained_vectors") and not (init_from or general_lms):
        pretrained, coverage = rule_vectors(preset["pretrained_vectors"], data.splits["train"]["text"])
        pretrained_vectors = preset["pretrained_vectors"] if pretrained else None
    if pretrained and preset.get("word_vectors") and preset["model"].get("embedding_size"):
        word2vec_size(preset["model"]["embedding_size"], pretrained)  # refused before anything trains
    own_lms = preset.get("pretrain") if not init_from else None
    if own_lms:
        with phases("own word LMs"):
            init_from, init_from_backward = pretrain_own_lms(data, own_lms, output_dir, extra_texts=extra_texts,
                                                             general_lms=general_lms, seed=seed, quick=quick,
                                                             resume=resume)
    if init_from:
        net, tokenizer = classifier_from_lm(init_from, preset, data, train_overrides, init_from_backward)
    else:
        net, tokenizer = None, build_tokenizer(data, preset)
    if pretrained:
        words_added = len(tokenizer)
        tokenizer = with_extra_words(tokenizer, vocabulary_words(pretrained.words))
        words_added = len(tokenizer) - words_added
    best_metric = "macro_f1" if data.multi_label else "accuracy"
    args = make_training_args(output_dir, preset["train"], task="classification", max_grad_norm=max_grad_norm,
                              seed=seed, epochs=epochs, max_steps=max_steps, quick=quick,
                              **{"metric_for_best_model": best_metric, **train_overrides})
    # Under accelerate launch the main process tokenizes with every core while the others wait, then they
    # read its datasets cache, instead of each tokenizing everything on one core.
    with args.main_process_first(desc="tokenizing"), phases("tokenizing"), tokenizer_threads():
        encoded = encode_splits(data, preset, tokenizer)
    texts = word_vector_texts(data, preset, extra_texts, word_vector_train_repeats)
    vector_settings = None
    if texts:
        vector_settings = dict(word_vector_settings(preset, texts), workers=word_vector_workers(args.world_size))
    set_seed(seed)
    if net is None:
        net = new_classifier(preset, tokenizer, data)
    optimizers, unfreezing, recipe = (None, None), None, None
    if init_from:
        optimizers, unfreezing, recipe = ulmfit_recipe(net, args, preset, len(encoded["train"]))
    callbacks = [*callbacks, *(callback for callback in (unfreezing, budget) if callback)]
    checkpoint = resume_checkpoint(output_dir, resume, clock, model=net, tokenizer=tokenizer)
    background_baseline, word2vec = None, None
    if texts and checkpoint is None:
        if baseline and args.process_index == 0:
            release_freed_memory()  # the child inherits what this process holds, not what tokenizing freed
            background_baseline = tfidf_in_background(data)  # in a child process, beside word2vec
        # The main process learns the vectors first; the others (same key) read its cache.
        with args.main_process_first(desc="word vectors"), phases("word vectors"):
            size = word2vec_size(net.config.embedding_size, pretrained) if pretrained else net.config.embedding_size
            word2vec = cached_word_vectors(Path(output_dir) / WORD_VECTOR_CACHE, tokenizer, texts, size, seed=seed,
                                           **vector_settings)
        if not pretrained:
            load_embeddings(net, *word2vec)
    if pretrained:  # on --resume the checkpoint's weights then replace these
        pretrained_record = start_embeddings(net, tokenizer, pretrained, word2vec, words_added)
    trainer = ClassifierTrainer(
        model=net,
        args=args,
        train_dataset=encoded["train"].remove_columns("length"),
        eval_dataset=encoded["validation"].remove_columns("length"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_classification_metrics,
        callbacks=[*early_stopping(args, preset), clock, ReleaseFreedMemory(), *callbacks],
        lengths=encoded["train"].select_columns(["length"]).with_format("numpy")[:]["length"],  # an array, not a list
        split_by_length=preset["arch"] == "lstm" and not torch.cuda.is_available(),
        trim_mode=preset["truncation"],
        optimizers=optimizers,
        adversarial_epsilon=preset["train"].get("adversarial_epsilon", 0.0),
        ngram_lr_factor=preset["train"].get("ngram_lr_factor", 1.0),
    )
    with phases("training (with validation)"):
        trainer.train(resume_from_checkpoint=checkpoint)
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    min_texts, dropped = preset["train"].get("ngram_min_texts", 1), 0
    if getattr(net, "ngrams", None) is not None and min_texts > 1:
        with phases("rare n-grams"):
            train_ids = (batch["input_ids"] for batch in encoded["train"].select_columns(["input_ids"]).iter(batch_size=256))
            dropped = drop_rare_ngrams(trainer.model, train_ids, min_texts)
    if pretrained:
        with phases("vocabulary expansion"):
            train_ids = (batch["input_ids"] for batch in encoded["train"].select_columns(["input_ids"]).iter(batch_size=1024))
            pretrained_record.update(expand_vocabulary(trainer.model, tokenizer, pretrained, train_ids,
                                                       keep=word2vec[1] if word2vec is not None else None))
    # Calibration (`seqhf.training.calibration`): a map (T, entropy slope, smoothing) fitted on validation. The final
    # split is predicted before they are folded into the saved classifier, so its figures give both sides;
    # `pipeline(...)` and ONNX then give the calibrated scores. The argmax does not change.
    with phases("calibration (validation)"):
        calibration, calibration_record = calibrate(trainer, encoded["validation"].remove_columns("length"))
    final = data.final_split
    with phases(f"{final} evaluation"):
        prediction = trainer.predict(encoded[final].remove_columns("length"), metric_key_prefix=final)
    fold_calibration(trainer.model, calibration)
    results = dict(
        run_record("classification", preset_name, preset, quick, net, data.description["source"], seed,
                   max_grad_norm, trainer),
        **describe_inputs(data, preset, tokenizer, encoded),
        word_vectors=(dict(vector_settings, texts=len(texts), train_repeats=word_vector_train_repeats) if texts else None),
        pretrained_vectors=pretrained and dict(pretrained_record, source=str(pretrained_vectors),
                                               **({"small_data_rule": True, "word_coverage": round(coverage, 4)} if coverage else {})),
        small_data_overrides=small_data,
        ngram_min_texts=min_texts if getattr(net, "ngrams", None) is not None else None,
        ngram_rows_dropped=dropped,
        adversarial_epsilon=trainer.adversarial_epsilon or None,
        best_validation_metric=best_metric, best_validation_value=trainer.state.best_metric,
        **kept_model(trainer, best_metric),
    )
    results.update(final_figures(prediction, data, len(encoded[final])))  # may restate validation_examples
    results.update(streaming=bool(streaming))
    results.update(calibration_fields(calibration), **calibration_record)
    results.update(final_calibration(prediction, calibration, final))  # the same keys when final is validation
    results[f"{final}_loss"] = results[f"{final}_nll"]  # the saved (calibrated) model's loss, not the one predicted
    if budget:
        results.update(cpu_budget_s=cpu_budget_s, stopped_by_cpu_budget=bool(budget.stopped_at_step),
                       train_steps=trainer.state.global_step, train_cpu_s=round(time.process_time(), 1))
    if init_from:
        results.update(init_from=ulmfit.lm_summary(init_from),
                       init_from_backward=init_from_backward and ulmfit.lm_summary(init_from_backward),
                       own_lms=own_lms and dict(own_lms, folders=[f"{OWN_LMS}/forward", f"{OWN_LMS}/backward"],
                                                **({"general_lms": list(map(str, general_lms))} if general_lms else {})),
                       ulmfit=dict(recipe, trainable_groups_per_epoch=unfreezing and unfreezing.trainable_per_epoch))
    if trainer.is_world_process_zero():
        try:
            plot_confusion_matrix(confusion_matrix(prediction.predictions, prediction.label_ids), data.label_names,
                                  Path(output_dir) / CONFUSION_NAME, title=f"{final} split")
            plot_final_reliability(prediction, calibration, Path(output_dir) / RELIABILITY_NAME, final)
        except Exception as err:  # the figures are a courtesy: never lose the trained model over them
            if disk_full_message(err, output_dir, 0.0):
                raise  # a full disk is said as such, and stops the run before it writes a partial folder
            print(f"Figures not drawn: {err}")
        if baseline:
            results["baseline"] = collect_baseline(background_baseline, data, phases)
        results["phase_wall_time_s"] = phases.seconds
    return finish_run(trainer, output_dir, results, clock)


def early_stopping(args, preset: dict) -> list:
    """The preset's early stopping, where the best checkpoint is kept (a run that keeps its final model
    runs its whole schedule)."""
    return [EarlyStoppingCallback(preset["train"]["patience"])] if args.load_best_model_at_end else []


def kept_model(trainer, metric: str) -> dict:
    """Which model the run saved, the best validation epoch's or the final one, and its validation figure."""
    if trainer.args.load_best_model_at_end:
        return dict(kept_model="best validation epoch", kept_validation_value=trainer.state.best_metric)
    last = [h[f"eval_{metric}"] for h in trainer.state.log_history if f"eval_{metric}" in h]
    return dict(kept_model="final epoch", kept_validation_value=last[-1] if last else None)


def check_options(epochs, word_vector_train_repeats: int, unlabelled_data, init_from, streaming_baseline=False,
                  max_steps: int = -1) -> None:
    """`train_classifier`'s options that cannot work, as SetupError, before anything is loaded."""
    if streaming_baseline:
        raise SetupError("--streaming cannot fit the TF-IDF baseline: it holds every training text's n-gram counts in "
                         "memory. Pass --no-baseline with --streaming (in Python: baseline=False with streaming=True).")
    if epochs is not None and epochs <= 0:
        raise SetupError(f"--epochs must be positive, got {epochs}.")
    if max_steps == 0 or max_steps < -1:  # (the command has no --max-steps: Python's name)
        raise SetupError(f"`max_steps` must be positive (or -1, not set), got {max_steps}.")
    if word_vector_train_repeats < 1:
        raise SetupError(f"--word-vector-train-repeats must be at least 1, got {word_vector_train_repeats}.")
    if unlabelled_data and init_from:
        raise SetupError("--unlabelled-data feeds the word vectors, which --init-from replaces: pass one of them.")


def load_inputs(data, preset: dict, seed: int, unlabelled_data, phases: PhaseTimes) -> tuple[ClassificationData, list]:
    """The labelled splits (`data` itself when already loaded) and the `--unlabelled-data` texts."""
    if not isinstance(data, ClassificationData):
        with phases("data"):
            data = load_data(data, preset, seed)
    extra_texts = []
    if unlabelled_data:
        with phases("extra unlabelled text"):
            extra_texts = load_extra_texts(unlabelled_data, data, preset)
    return data, extra_texts


def new_classifier(preset: dict, tokenizer, data: ClassificationData):
    """The preset's classifier, untrained, sized to the tokenizer and the classes."""
    return build_model("classification", preset, tokenizer, **label_config(data))


def classifier_from_lm(init_from, preset: dict, data: ClassificationData, train_overrides: dict, init_from_backward=None):
    """Fine-tuning from a pretrained word LM (`seqhf.training.ulmfit`): its backbone under a new head, and its tokenizer
    (with a backward LM too: a bidirectional backbone, one direction from each). The preset then learns no word
    vectors (the LMs' embeddings are the start)."""
    labels = label_config(data)
    if init_from_backward:
        net, tokenizer = ulmfit.bidirectional_classifier_from_lms(init_from, init_from_backward, preset["model"],
                                                                  labels["id2label"])
    else:
        net, tokenizer = ulmfit.classifier_from_lm(init_from, preset["model"], labels["id2label"])
    net.config.problem_type = labels["problem_type"]
    tokenizer.model_max_length = tokenizer_length_limit(preset)
    preset["word_vectors"] = None
    if ulmfit_settings(preset)["gradual_unfreezing"]:
        train_overrides.setdefault("ddp_find_unused_parameters", True)  # frozen groups get no gradient
    return net, tokenizer


def ulmfit_recipe(net, args, preset: dict, train_texts: int):
    """ULMFiT's optimisation: discriminative rates and a slanted triangular schedule (the optimizer and
    scheduler), and gradual unfreezing (a callback, or None). Returns them with the recipe's settings."""
    recipe = ulmfit_settings(preset)
    optimizers = ulmfit.ulmfit_optimizers(net, args, train_texts,
                                          **{k: v for k, v in recipe.items() if k != "gradual_unfreezing"})
    unfreezing = ulmfit.GradualUnfreezing(ulmfit.layer_groups(net)) if recipe["gradual_unfreezing"] else None
    return optimizers, unfreezing, recipe


def ulmfit_settings(preset: dict) -> dict:
    """The preset's ULMFiT recipe (`train.ulmfit`) over the paper's defaults."""
    return {**ulmfit.ULMFIT_DEFAULTS, **preset["train"].get("ulmfit", {})}


def final_figures(prediction, data: ClassificationData, examples: int) -> dict:
    """The final split's figures (`test_accuracy`, ..., `test_loss`, `test_examples`)."""
    final = data.final_split
    figures = classification_metrics(prediction.predictions, prediction.label_ids, data.label_names, per_class=True)
    return dict(evaluated_on=final, **{f"{final}_{k}": v for k, v in figures.items()},
                **{f"{final}_loss": prediction.metrics.get(f"{final}_loss"), f"{final}_examples": examples})


def collect_baseline(background_baseline, data: ClassificationData, phases: PhaseTimes) -> dict:
    """The TF-IDF baseline's figures: from the child process fitting it, or fitted here. A baseline that fails
    (texts with no word TF-IDF can read, e.g. only emoji) is a warning and a record of why, never the end of
    a trained run."""
    try:
        if background_baseline is not None:
            with phases("baseline (waiting for the background fit)"):
                return background_baseline.result()
        print("Fitting the TF-IDF + logistic-regression baseline on the same splits ...")
        with phases("baseline"):
            return tfidf_logistic_regression(data)
    except Exception as err:  # the model is trained and evaluated: keep it whatever the baseline does
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        print(f"warning: the TF-IDF baseline failed ({reason}); the model is saved without it.", file=sys.stderr,
              flush=True)
        return dict(method=TFIDF_METHOD, failed=reason)


def train_sentiment(model="lstm", dataset=seqdata.IMDB_HUB_ID, output_dir="runs/sentiment", **kwargs) -> dict:
    """The chapter's project: IMDb sentiment, labelled `negative` / `positive`."""
    data = dict(source=str(dataset), label_names=list(IMDB_LABELS))
    return train_classifier(data, model, output_dir, **kwargs)


def classify(folder, texts, **pipeline_kwargs) -> list:
    """Classify `texts` (a list, or one text: one result in a list, as `pipeline` gives it) with the classifier
    saved in `folder`, through `pipeline` (a folder whose save did not finish is refused with an
    `IncompleteFolderError` naming its missing or empty files, a language model's folder with a `NotAClassifierError`)."""
    from transformers import pipeline

    check_classifier_folder(folder)
    given = texts
    texts = [texts] if isinstance(texts, str) else list(texts) if isinstance(texts, Iterable) else None
    if texts is None or not all(isinstance(text, str) for text in texts):
        raise TypeError(f"`texts` must be a text or a list of texts (str), got {given!r:.80}.")
    if not texts:
        return []
    classifier = pipeline("text-classification", model=str(folder), **pipeline_kwargs)
    return classifier(texts, truncation=True)
