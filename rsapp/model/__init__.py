"""The network (vision + fusion + token budget, G-MoE LM with CS-HLoRA, SSE-U) and its quantized runtime.

Knows nothing about maps or files: pictures come in as arrays, text goes out.
"""
