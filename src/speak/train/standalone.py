"""The standalone tokenizer configuration, torch-free (the CLI reads its defaults without importing torch)."""

# The standalone tokenizer (`speak fit-tokenizer`'s default; not the paper's per-character encoder): hashed n-grams
# of orders 1-3 read up to 2 characters ahead, folded into per-key scalars for inference, no tanh (the compiled
# scan's costliest step), trained with the teacher-forced membrane loss and a hard reset at every spike (with which
# teacher forcing is exact: a state starts from u_reset at each exemplar boundary) (docs/decisions.md).
STANDALONE = {"encoder": "char-ngram", "char_dim": 8, "ngram_order": 3, "ngram_buckets": 16384,
              "ngram_lookahead": 2, "mem_balanced": True, "tanh": False, "steps": 400, "objective": "forced",
              "forced_scale": 1.0, "reset_mode": "all-hard"}
