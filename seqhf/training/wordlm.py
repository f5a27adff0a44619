"""Word-level LSTM language models on any text through `transformers.Trainer` (the pretraining half of
ULMFiT; `seqhf.training.ulmfit` is the fine-tuning half).

`train_wordlm` reads IMDb's labelled training reviews (validation carved out as the classifier carves it)
and its unlabelled reviews, never validation or test, or any other text (a dataset's text column, `.txt`
files read as paragraphs; held-out texts carved from it with a fixed seed), builds the word tokenizer on
them, joins the texts into one stream (`[EOS]` between texts) and trains a `SeqLSTMForCausalLM` on windows
of it. Perplexity is measured with the full softmax on held-out texts (for IMDb, the carved validation reviews).

The output softmax over a 20-30k vocabulary costs more than the LSTM itself on a CPU. `softmax="sampled"`
trains against the target word plus `sampled_words` words drawn from the unigram distribution (shared by
the batch, their logits corrected by -log(k q), Bengio & Senecal 2008); the model and its evaluation keep the full
softmax, so the saved folder is an ordinary causal LM.
"""

import math
import time

import torch
import torch.nn.functional as F
from datasets import concatenate_datasets
from transformers import EarlyStoppingCallback, default_data_collator, set_seed

from ..data import char_text, sources
from ..data.char_text import encode_stream
from ..data.classification import VALIDATION_NAMES, load_raw
from ..data.errors import DataError
from ..data.unlabelled import is_plain_text, load_unlabelled_texts
from ..data.tokenization import EOS, build_word_tokenizer
from ..models.lstm.configuration_lstm import SeqLSTMConfig
from ..models.lstm.modeling_lstm import SeqLSTMForCausalLM
from .common import (
    RankLog,
    RunClock,
    SetupError,
    TimeBudget,
    batch_rows,
    check_run_lengths,
    finish_run,
    make_training_args,
    resume_checkpoint,
    run_record,
)
from .lm_processes import RankSeeds, SharedWindowEvaluation, check_shared_batch
from .presets import get_preset
from .run_folder import holds_output_folder
from .ulmfit import check_lm_to_fine_tune, lm_for_new_text, lm_summary

SOFTMAXES = ("full", "sampled")


def sampled_softmax_loss(hidden, targets, weight, bias, log_proposal, num_samples: int):
    """Mean cross-entropy of each target against `num_samples` words drawn (with replacement, shared by
    all rows) from the proposal q, each sampled logit corrected by -log(num_samples * q(word)).

    With the correction, the sampled words' exp-logits sum to an importance-sampling estimate of the
    softmax's normaliser, so the loss estimates the full cross-entropy (and its gradient the full one's).
    hidden (N, H), targets (N,), weight (V, H), bias (V,) or None, log_proposal (V,) log-probabilities.
    A sampled word equal to a row's target is masked out of that row.
    """
    samples = torch.multinomial(log_proposal.exp(), num_samples, replacement=True)
    correction = log_proposal + math.log(num_samples)
    true_logits = (hidden * weight[targets]).sum(-1)
    sampled_logits = hidden @ weight[samples].T - correction[samples]
    if bias is not None:
        true_logits = true_logits + bias[targets]
        sampled_logits = sampled_logits + bias[samples]
    sampled_logits = sampled_logits.masked_fill(samples.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([true_logits.unsqueeze(1), sampled_logits], dim=1).float()
    return F.cross_entropy(logits, torch.zeros_like(targets))


def unigram_log_proposal(ids: torch.Tensor, vocab_size: int, power: float = 0.75) -> torch.Tensor:
    """log q for sampled softmax: training-word frequencies to the power 0.75 (every word at least once);
    with `power=1`, the add-one unigram distribution."""
    counts = torch.bincount(ids, minlength=vocab_size).double() + 1.0
    q = counts.pow(power)
    return (q / q.sum()).log().float()


def start_at_unigram(model, train_ids: torch.Tensor) -> None:
    """Start the LM head's bias at the training words' log frequencies, so the model predicts the unigram
    distribution from step 0 and its state is free to learn the context.

    Started at zero, the first steps put the unigram frequencies where they can: into the top layer's state,
    which Adam drives to a constant, saturated vector within tens of steps (|c| about 50, the same h for every
    input). Its gradients vanish there, the LM stays at unigram perplexity, and a classifier fine-tuned from it
    sees the same features for every review (50 % on IMDb). Measured with a plain PyTorch LSTM LM too.
    """
    head = model.get_output_embeddings()
    if head.bias is None:
        raise SetupError("The word LM needs a bias in its output layer (config.lm_head_bias=True).")
    with torch.no_grad():
        head.bias.copy_(unigram_log_proposal(train_ids, head.bias.numel(), power=1.0))


class WordLMTrainer(SharedWindowEvaluation):
    """Trainer for the word LM: full or sampled softmax in training, full softmax in evaluation."""

    def __init__(self, *args, softmax="full", sampled_words=1024, log_proposal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.softmax, self.sampled_words, self.log_proposal = softmax, sampled_words, log_proposal
        self.model_accepts_loss_kwargs = False
        self.rank_log = RankLog()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        input_ids, targets = inputs["input_ids"], inputs["shift_labels"]
        if model.training:
            self.rank_log.record(input_ids)
        if model.training and self.softmax == "sampled":
            # The head is bypassed, so this runs on the unwrapped model (one process; checked at setup).
            net = self.accelerator.unwrap_model(model)
            hidden = net.dropout(net.model(input_ids=input_ids).last_hidden_state)
            head = net.get_output_embeddings()
            log_q = self.log_proposal.to(hidden.device)
            loss = sampled_softmax_loss(hidden.flatten(0, 1), targets.flatten(), head.weight, head.bias, log_q,
                                        self.sampled_words)
        else:
            logits = model(input_ids=input_ids).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return (loss, {"loss": loss}) if return_outputs else loss

    def window_metrics(self, loss: float, prefix: str) -> dict:
        return {f"{prefix}_perplexity": math.exp(min(loss, 50.0))}


# `seqhf train lm`'s options, as errors about its text name them.
LM_TEXT_OPTIONS = dict(source="--dataset", text_column="--text-column", split="--dataset-split")
HELDOUT_SPLIT_NAMES = ("test", *VALIDATION_NAMES)


def lm_texts(dataset, preset: dict, seed: int = 42, text_column: str = "text", split: str | None = None,
             config: str | None = None):
    """(training texts, held-out texts, parts). Data in the stanfordnlp/imdb layout, read whole (no `split`, the
    `text` column), gives its reviews (`review_texts`); any other text gives its texts (`corpus_texts`). `parts`
    records, for the card, what was read (`data`: its source and layout, and the counts of each part)."""
    try:
        raw = None if is_plain_text(dataset) else load_raw(str(dataset), config)
        if raw is not None and text_column == "text" and split is None and sources.in_imdb_layout(raw):
            return review_texts(dataset, raw, preset, seed)
        if raw is not None and split is None:
            split = training_splits(raw, dataset)
        return corpus_texts(dataset, preset, seed, text_column, split, config)
    except (DataError, ValueError) as err:
        raise SetupError(str(err)) from err


def training_splits(raw, dataset) -> list | None:
    """The splits an LM reads from a dataset by default: all but those named test or validation (a classifier is
    then evaluated on text its LM never read), or all (None) when no other split is left."""
    heldout = [name for name in raw if name.lower() in HELDOUT_SPLIT_NAMES]
    kept = [name for name in raw if name not in heldout]
    if not heldout or not kept:
        return None
    print(f"The LM reads the {' and '.join(map(repr, kept))} split of {str(dataset)!r}, not "
          f"{' and '.join(map(repr, heldout))}, where a classifier is evaluated (--dataset-split names one to read).")
    return kept


def sample_texts(part, cap):
    """At most `cap` rows of `part` (a sample with seed 42, the one the classifier presets' `unlabelled_size`
    draws for word2vec)."""
    return part.shuffle(seed=42).select(range(cap)) if cap is not None and cap < len(part) else part


def review_texts(dataset, raw, preset: dict, seed: int):
    """IMDb's carved training reviews and unlabelled reviews, and the carved validation reviews as held-out
    text. `train_reviews` / `unlabelled_reviews` / `validation_reviews` cap each part. `parts` records how many
    labelled training and unlabelled reviews were read, of how many."""
    raw = sources.imdb_splits(raw, str(dataset), validation_size=preset.get("validation_size", 0.1), seed=seed)

    def sample(split, cap):
        return list(sample_texts(raw[split], cap)["text"]) if split in raw else []

    labelled = sample("train", preset.get("train_reviews"))
    unlabelled = sample("unsupervised", preset.get("unlabelled_reviews"))
    train, heldout = labelled + unlabelled, sample("validation", preset.get("validation_reviews"))
    parts = dict(labelled_train_reviews=len(labelled), labelled_train_available=len(raw["train"]),
                 unlabelled_reviews=len(unlabelled),
                 unlabelled_available=len(raw["unsupervised"]) if "unsupervised" in raw else 0,
                 data=dict(source=str(dataset), layout="imdb", text_column="text"))
    if not train:
        raise SetupError(f"No training text in {dataset!r}: its train and unsupervised splits are empty or capped to 0.")
    if len(heldout) < 2:
        raise SetupError(f"The LM needs at least 2 held-out (validation) reviews, got {len(heldout)}.")
    return train, heldout, parts


def corpus_texts(dataset, preset: dict, seed: int, text_column: str = "text", split: str | list | None = None,
                 config: str | None = None):
    """Any other text, read as `load_unlabelled_texts` reads it: a dataset's `text_column` in its `split` (a
    name or a list of names; else in every split), or a `.txt` file or folder read as paragraphs. The held-out texts are carved at random
    with `seed`: the preset's `validation_size` of them (0.1 by default; at least 2), at most its
    `validation_reviews`. `unlabelled_reviews` caps the training texts (the sample `review_texts` draws)."""
    found, described = load_unlabelled_texts([dataset], text_column, split, config=config, options=LM_TEXT_OPTIONS)
    texts = concatenate_datasets(found) if len(found) > 1 else found[0]
    fraction, cap = preset.get("validation_size", 0.1), preset.get("validation_reviews")
    held = max(2, int(fraction) if fraction >= 1 else round(fraction * len(texts)))
    held = min(held, cap) if cap is not None else held
    if held < 2 or len(texts) <= held:
        raise SetupError(f"{str(dataset)!r} holds {len(texts)} text(s) and the LM needs more: at least 2 held out "
                         "(never trained on) and 1 to train on.")
    carved = texts.train_test_split(test_size=held, seed=seed)
    train = list(sample_texts(carved["train"], preset.get("unlabelled_reviews"))["text"])
    source = described[0]
    read = [name for name in source["splits"] or [] if name.lower() in HELDOUT_SPLIT_NAMES]
    if read:
        print(f"The LM reads the {' and '.join(map(repr, read))} split of {str(dataset)!r}: a classifier evaluated "
              "on it would be evaluated on text its LM has read.")
    data = dict(source=str(dataset), layout="texts", text_column=source["text_column"], splits=source["splits"],
                read_as="paragraphs" if source["splits"] is None else "column", texts=len(texts),
                train_texts=len(train), train_texts_available=len(carved["train"]), heldout_texts=held,
                heldout_fraction=fraction, heldout_cap=cap)
    return train, list(carved["test"]["text"]), dict(data=data)


class TooLittleTextError(SetupError):
    """Too few texts or tokens to train on or to hold out (`seqhf.training.own_lms` names its own cause for it)."""


def given_texts(dataset, train: list, heldout: list, unlabelled: list = ()):
    """`train_wordlm(texts=...)`'s texts (a classifier's training and validation texts, and any unlabelled texts it
    has, which train the LM after its training texts), checked as `lm_texts` checks what it reads, and their record
    for the card."""
    if not train or len(heldout) < 2:
        raise TooLittleTextError(f"The LM needs at least 1 text to train on and 2 held out, got {len(train)} and {len(heldout)}.")
    train = list(train) + list(unlabelled)
    data = dict(source=str(dataset), layout="texts", text_column="text", splits=None, read_as="classifier splits",
                texts=len(train) + len(heldout), train_texts=len(train), train_texts_available=len(train),
                heldout_texts=len(heldout), unlabelled_texts=len(unlabelled))
    return train, list(heldout), dict(data=data)


def with_max_texts(preset: dict, max_texts) -> dict:
    """`preset` with its cap on the training texts (`unlabelled_reviews`) set to `max_texts`: a positive number,
    or "all" (no cap)."""
    if max_texts == "all":
        return dict(preset, unlabelled_reviews=None)
    if isinstance(max_texts, bool) or not isinstance(max_texts, int) or max_texts < 1:
        raise SetupError(f"--max-texts must be a positive number of texts or 'all', got {max_texts!r}.")
    return dict(preset, unlabelled_reviews=max_texts)


def build_lm_tokenizer(texts, preset: dict):
    tokenizer = build_word_tokenizer(texts, vocab_size=preset["vocab_size"] - 1, model_max_length=1_000_000)
    # [EOS] separates the stream's texts, so what follows it is the start of a text: it is also the BOS that
    # generation from an empty prompt starts from (as GPT-2's <|endoftext|> is both).
    tokenizer.add_special_tokens({"eos_token": EOS, "bos_token": EOS})  # the last id
    return tokenizer


def check_processes(softmax: str, args) -> None:
    """A step's batch must share out among the processes, and the sampled softmax, which bypasses the model's head
    (and so DistributedDataParallel's gradient averaging), trains in one process."""
    if softmax == "sampled" and args.world_size > 1:
        raise SetupError("--softmax sampled trains in one process; under several processes use --softmax full "
                         "(or the cpu-full preset).")
    check_shared_batch(args)


@holds_output_folder
def train_wordlm(model="lstm", dataset=sources.IMDB_HUB_ID, output_dir="runs/wordlm", *, text_column="text",
                 dataset_split=None, dataset_config=None, quick=False, softmax=None, seq_len=None, epochs=None,
                 max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(), time_budget_s=None,
                 cpu_budget_s=None, backward=False, texts=None, init_from=None, max_texts=None, **train_overrides) -> dict:
    """Train a word-level LSTM LM and return its results. `dataset`: data in the stanfordnlp/imdb layout (its
    training + unlabelled reviews; held out: validation reviews carved from train), or any other text: a Hub id,
    dataset folder or data file read from `text_column` (every split but test and validation, or `dataset_split`; `dataset_config`
    names a Hub configuration), or a `.txt` file or folder of them read as paragraphs; the held-out texts are
    carved from it at random with `seed` (the preset's `validation_size`, 0.1 by default, at most its
    `validation_reviews`; see `corpus_texts`).
    `time_budget_s` stops training after that many seconds of training (the planned schedule is cut short);
    `cpu_budget_s` once the process has spent that many CPU seconds, its setup included (`TimeBudget`).
    `backward`: the LM reads each text from its last word to its first (`config.reads_backward`): with a forward LM
    of the same texts, the start of a bidirectional classifier (`train_classifier(init_from_backward=...)`).
    `texts`: `(training texts, held-out texts[, unlabelled texts])` given as lists instead of read from `dataset`,
    which then only names their source (a classifier's own LMs: `seqhf.training.own_lms`).
    `init_from`: a word LM folder (pretrained on general text) to fine-tune on this text instead of starting from
    scratch, ULMFiT's second stage (`ulmfit.lm_for_new_text`): its shape and regularisers, not the preset's; the
    preset gives the vocabulary size and the training settings.
    `max_texts`: at most this many training texts, a sample with seed 42 (for data in the stanfordnlp/imdb layout,
    its unlabelled reviews), or "all"; by default the preset's cap (`unlabelled_reviews`: 20,000 for the `cpu*`
    presets, none for `lstm`)."""
    clock = RunClock()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("wordlm", model, quick)
    if max_texts is not None:
        if texts is not None:
            raise SetupError("`max_texts` caps the texts read from `dataset`; `texts` are given whole.")
        preset = with_max_texts(preset, max_texts)
    softmax = softmax or preset.get("softmax", "full")
    seq_len = preset["seq_len"] if seq_len is None else seq_len  # 0 is refused below, not the preset's
    if softmax not in SOFTMAXES:
        raise SetupError(f"--softmax must be one of {SOFTMAXES}, got {softmax!r}.")
    check_run_lengths(seq_len, epochs, max_steps)
    if init_from is not None:
        check_lm_to_fine_tune(init_from, backward)
    if texts is None:
        train_texts, heldout_texts, parts = lm_texts(dataset, preset, seed, text_column, dataset_split, dataset_config)
    else:
        train_texts, heldout_texts, parts = given_texts(dataset, *texts)
    tokenizer = build_lm_tokenizer(train_texts, preset)
    train_ids = encode_stream(tokenizer, train_texts, backward)
    half = len(heldout_texts) // 2  # first half: validation (early stopping), second half: the reported figure
    valid_ids = encode_stream(tokenizer, heldout_texts[:half], backward)
    heldout_ids = encode_stream(tokenizer, heldout_texts[half:], backward)
    for name, ids in (("training", train_ids), ("validation", valid_ids), ("held-out", heldout_ids)):
        if len(ids) < seq_len + 1:
            raise TooLittleTextError(f"The {name} text ({len(ids)} tokens) is shorter than --seq-len + 1 = {seq_len + 1}.")

    budgets = [TimeBudget(s, cpu=cpu) for s, cpu in ((time_budget_s, False), (cpu_budget_s, True)) if s is not None]
    callbacks = [*callbacks, *budgets]
    set_seed(seed)
    if init_from is None:
        config = SeqLSTMConfig(**{"lm_head_bias": True, **preset["model"]}, vocab_size=len(tokenizer),
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                               bos_token_id=tokenizer.bos_token_id, is_decoder=True,
                               **({"reads_backward": True} if backward else {}))
        net, words_known = SeqLSTMForCausalLM(config), None
    else:
        net, words_known = lm_for_new_text(init_from, tokenizer, backward)
    start_at_unigram(net, train_ids)
    # As the char LM's: the preset's batch is one optimizer step's whatever the number of processes, each taking
    # its share of the rows, so a recipe takes the same steps in one process or several, only faster.
    args = make_training_args(output_dir, preset["train"], task="wordlm", max_grad_norm=max_grad_norm, seed=seed,
                              epochs=epochs, max_steps=max_steps, quick=quick,
                              **{"accelerator_config": {"split_batches": True}, **train_overrides})
    check_processes(softmax, args)
    trainer = WordLMTrainer(
        model=net, args=args, train_dataset=char_text.CharChunks(train_ids, seq_len, jitter=True),
        eval_dataset=char_text.CharChunks(valid_ids, seq_len), processing_class=tokenizer,
        data_collator=default_data_collator,
        callbacks=[EarlyStoppingCallback(preset["train"]["patience"]), clock, RankSeeds(), *callbacks],
        softmax=softmax, sampled_words=preset.get("sampled_words", 1024),
        log_proposal=unigram_log_proposal(train_ids, len(tokenizer)) if softmax == "sampled" else None,
    )
    train_start = time.time()
    trainer.train(resume_from_checkpoint=resume_checkpoint(output_dir, resume, clock, model=net, tokenizer=tokenizer))
    train_time = time.time() - train_start
    trainer.remove_callback(EarlyStoppingCallback)
    heldout = trainer.evaluate(char_text.CharChunks(heldout_ids, seq_len), metric_key_prefix="heldout")
    results = dict(
        run_record("wordlm", preset_name, preset, quick, net, dataset, seed, max_grad_norm, trainer),
        heldout_loss=heldout["heldout_loss"], heldout_perplexity=heldout["heldout_perplexity"],
        heldout_tokens=len(heldout_ids), heldout_reviews=len(heldout_texts) - half,
        train_tokens=len(train_ids), train_reviews=len(train_texts), **parts, validation_tokens=len(valid_ids),
        vocab_size=len(tokenizer), seq_len=seq_len, softmax=softmax, reads_backward=backward,
        sampled_words=preset.get("sampled_words") if softmax == "sampled" else None,
        train_tokens_per_second=round(trainer.state.global_step * batch_rows(args) * args.gradient_accumulation_steps
                                      * seq_len / train_time, 1),
        train_time_s=round(train_time, 1),
        time_budget_s=time_budget_s, cpu_budget_s=cpu_budget_s,
        stopped_by_time_budget=any(b.stopped_at_step for b in budgets if not b.cpu),
        stopped_by_cpu_budget=any(b.stopped_at_step for b in budgets if b.cpu), train_steps=trainer.state.global_step,
        process_cpu_s=round(time.process_time(), 1),
        validation_size=preset.get("validation_size", 0.1),
        best_validation_loss=trainer.state.best_metric,
        **({} if init_from is None else dict(init_from=lm_summary(init_from), init_words_known=words_known)),
    )
    return finish_run(trainer, output_dir, results, clock)
