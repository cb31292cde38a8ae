"""Training: two stages on the generated corpus, resumable, safetensors checkpoints. Never imported by the UI."""
