"""Task tokens, the training-free router, prompt templates and the text ↔ geometry codecs."""
