#!/usr/bin/env python
"""Full vs sampled softmax for the word LM on the CPU: training tokens per CPU-second and the full-softmax loss
after the same number of steps (the measurement behind the word LM presets' choice; see the README).

    OMP_NUM_THREADS=1 python scripts/measure_lm_softmax.py --steps 120 full sampled
"""

import argparse
import os
import sys
import seqhf.data.sources as seqdata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("softmax", nargs="+", choices=["full", "sampled"])
    p.add_argument("--dataset", default="../shared/data/imdb")
    p.add_argument("--reviews", type=int, default=3000, help="unlabelled reviews to train on (the last 20k tokens are scored)")
    p.add_argument("--vocab-size", type=int, default=20000)
    p.add_argument("--width", type=int, default=128, help="embedding = hidden size (tied), 2 layers")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--sampled-words", type=int, default=1024)
    a = p.parse_args(argv)

    import time

    import torch
    import torch.nn.functional as F

    from seqhf.models.lstm.configuration_lstm import SeqLSTMConfig
    from seqhf.models.lstm.modeling_lstm import SeqLSTMForCausalLM
    from seqhf.training.wordlm import build_lm_tokenizer, encode_stream, sampled_softmax_loss, start_at_unigram, unigram_log_proposal

    texts = list(seqdata.load_imdb(a.dataset)["unsupervised"].select(range(a.reviews))["text"])
    tokenizer = build_lm_tokenizer(texts, dict(vocab_size=a.vocab_size))
    ids, vocab = encode_stream(tokenizer, texts), len(tokenizer)
    log_q = unigram_log_proposal(ids, vocab)
    counts = torch.bincount(ids, minlength=vocab).double()
    freq = counts[counts > 0] / counts.sum()
    print(f"{len(ids):,} tokens, vocabulary {vocab:,}, unigram entropy {float(-(freq * freq.log()).sum()):.3f} nats, "
          f"torch threads {torch.get_num_threads()}")
    train_ids, scored = ids[:-20_000], ids[-20_001:]
    for softmax in a.softmax:
        torch.manual_seed(0)
        config = SeqLSTMConfig(vocab_size=vocab, embedding_size=a.width, hidden_size=a.width, num_hidden_layers=2,
                               tie_word_embeddings=True, lm_head_bias=True, is_decoder=True, pad_token_id=0)
        model = SeqLSTMForCausalLM(config).train()
        start_at_unigram(model, train_ids)  # as train_wordlm does
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        g = torch.Generator().manual_seed(0)
        losses, cpu = [], time.process_time()
        for _ in range(a.steps):
            starts = torch.randint(0, len(train_ids) - 61, (64,), generator=g)
            batch = torch.stack([train_ids[s : s + 61] for s in starts])
            inputs, targets = batch[:, :-1], batch[:, 1:].flatten()
            if softmax == "full":
                loss = F.cross_entropy(model(input_ids=inputs).logits.flatten(0, 1), targets)
            else:
                hidden = model.model(input_ids=inputs).last_hidden_state.flatten(0, 1)
                loss = sampled_softmax_loss(hidden, targets, model.lm_head.weight, model.lm_head.bias, log_q,
                                            a.sampled_words)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        cpu = time.process_time() - cpu
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=scored[:-1].view(1, -1)).logits[0]
            full_loss = F.cross_entropy(logits, scored[1:]).item()
        print(f"{softmax:>8}: {a.steps * 64 * 60 / cpu:,.0f} training tokens per CPU-second; after {a.steps} steps "
              f"full-softmax loss {full_loss:.3f} nats (perplexity {torch.tensor(full_loss).exp():.0f}) on the last "
              f"20,000 tokens; training loss by 20 steps {[round(sum(losses[i:i + 20]) / 20, 2) for i in range(0, a.steps, 20)]}")


if __name__ == "__main__":
    main()
