"""Evaluation on fresh seeded splits and on the real labelled samples. Never imported by the UI."""
