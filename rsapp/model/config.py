"""One config for the whole network; round-trips to config.json. Presets say what the shipped sizes are."""

from __future__ import annotations

from transformers import PretrainedConfig


class RsappConfig(PretrainedConfig):
    """Hyper-parameters of the vision encoder, fusion, token budget, G-MoE LM, CS-HLoRA and SSE-U."""

    model_type = "rsapp_vlm"

    def __init__(
        self,
        # vision (ViT, built from this config, no download)
        image_size: int = 128,  # side of one ViT view, px
        patch_size: int = 16,
        chip_size: int = 256,  # side of the chip the analyst cuts; local views tile it at full resolution
        vision_dim: int = 128,
        vision_layers: int = 3,
        vision_heads: int = 4,
        # GeoLLaVA-8K token budget for local-view tokens (after background pruning + anchored selection)
        local_token_budget: int = 32,
        background_clusters: int = 4,
        background_share: float = 0.25,  # a cluster covering more than this share of the global view is background
        background_cos: float = 0.92,  # local tokens this similar to a background prototype are pruned
        # language model
        vocab_size: int = 2048,
        hidden_size: int = 192,
        num_layers: int = 4,
        num_heads: int = 4,
        ffn_size: int = 576,
        num_experts: int = 3,  # G-MoE: image, region, pixel
        max_position: int = 1024,
        rope_theta: float = 10000.0,
        inject_layers: tuple[int, ...] = (1, 3),  # FUSE: LM layers that cross-attend to the visual tokens again
        # CS-HLoRA (ScaleEarth): rank tiers object / structure / semantic as fractions of the rank (0–10, 11–31,
        # 32–63 at r = 64 in the paper)
        hlora_rank: int = 16,
        hlora_alpha: float = 16.0,
        hlora_tier_bounds: tuple[float, ...] = (11 / 64, 32 / 64, 1.0),
        hlora_tau: tuple[float, ...] = (0.0, 0.7, 1.7),  # log10 GSD: 1 m, 5 m, 50 m
        hlora_a: float = 4.0,
        hlora_learn_tau: bool = True,
        # SSE-U
        sse_hidden: int = 128,
        # Text4Seg descriptor grid (DESIGN.md allows 24 or 16; 16 keeps the tiny model's answers short)
        seg_grid: int = 16,
        # classes of the dense auxiliary target (training only: which classes cover each descriptor cell)
        dense_classes: int = 8,
        dense_class_names: tuple[str, ...] = ("others", "building", "road", "water", "vegetation", "field", "car",
                                              "ship"),
        # who writes [SEG] descriptors at inference: "lm" (the language model, token by token) or "head" (read
        # off the dense head's cell map; rsapp.model.runtime.MASK_SOURCES)
        mask_source: str = "lm",
        # who writes [VG] boxes: "lm" (the language model, number by number) or "head" (the box head's instance
        # proposals that the LM's state picks, rsapp.model.boxes; the LM writes them when there is none)
        box_source: str = "lm",
        # special tokens (ids filled in from the tokenizer)
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        image_token_id: int = 3,
        answer_token_id: int = 4,
        **kwargs,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.chip_size = chip_size
        self.vision_dim = vision_dim
        self.vision_layers = vision_layers
        self.vision_heads = vision_heads
        self.local_token_budget = local_token_budget
        self.background_clusters = background_clusters
        self.background_share = background_share
        self.background_cos = background_cos
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ffn_size = ffn_size
        self.num_experts = num_experts
        self.max_position = max_position
        self.rope_theta = rope_theta
        self.inject_layers = list(inject_layers)
        self.hlora_rank = hlora_rank
        self.hlora_alpha = hlora_alpha
        self.hlora_tier_bounds = list(hlora_tier_bounds)
        self.hlora_tau = list(hlora_tau)
        self.hlora_a = hlora_a
        self.hlora_learn_tau = hlora_learn_tau
        self.sse_hidden = sse_hidden
        self.seg_grid = seg_grid
        self.dense_classes = dense_classes
        self.dense_class_names = list(dense_class_names)
        self.mask_source = mask_source
        self.box_source = box_source
        self.image_token_id = image_token_id
        self.answer_token_id = answer_token_id
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)

    @property
    def grid(self) -> int:
        """Tokens per side of one view."""
        return self.image_size // self.patch_size

    @property
    def hlora_tiers(self) -> list[tuple[int, int]]:
        """Rank ranges [start, end) of the object, structure and semantic tiers."""
        edges = [0] + [round(f * self.hlora_rank) for f in self.hlora_tier_bounds]
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


PRESETS = {
    # ~4 M parameters: trains on 2 CPU cores in a session.
    "tiny": dict(),
    # A bigger sibling for a lent GPU; same code, same checkpoints layout.
    "small": dict(vision_dim=256, vision_layers=6, vision_heads=8, hidden_size=384, num_layers=8, num_heads=6,
                  ffn_size=1152, local_token_budget=64, hlora_rank=64, hlora_alpha=64.0, vocab_size=4096),
}
