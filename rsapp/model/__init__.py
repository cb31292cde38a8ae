"""Model v2: the pretrained EfficientNet-Lite tower with its heads (vision_model), SmolLM2 with G-MoE and
CS-HLoRA (smollm), joined in vlm; the quantized runtime in inference.

Knows nothing about maps, files or task codecs: pictures come in as arrays, text and pixel maps go out.
"""
