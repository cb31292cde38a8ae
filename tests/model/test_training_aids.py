"""The training aids added to the model: descriptor cursor, number-value embeddings, dense auxiliary head."""

import numpy as np
import torch

from rsapp.data.samples import make_sample
from rsapp.model.modeling import NO_CURSOR, RsappVLM
from rsapp.model.runtime import Runtime
from rsapp.train.loop import answer_cursor, continue_from, encode_batch
from rsapp.tasks.descriptors import descriptor_cursor
from rsapp.tasks.prompts import build_prompt
from tests.model.conftest import TOY


class FakeTokenizer:
    """Word-level stand-in with the tokenizers API the model and trainer use."""

    def __init__(self, words):
        self.vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "<eos>", "<image>", "<ans>"] + words)}

    def get_vocab(self):
        return dict(self.vocab)


def _inputs(model, cursor=None, seg_class=None):
    x = torch.rand(1, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[3, 5, 9, 4, 7, 8]])
    return model(x, ids, torch.ones_like(ids), g=torch.tensor([2]), s=torch.tensor([0.5]), cursor=cursor,
                 seg_class=seg_class)["logits"]


def test_new_aids_start_as_exact_no_ops(toy_model):
    """Zero-initialised: a model continued from an older checkpoint starts with the same outputs."""
    before = _inputs(toy_model)
    cursor = torch.tensor([[[NO_CURSOR, NO_CURSOR], [NO_CURSOR, NO_CURSOR], [0, 0], [0, 3], [1, 0]]])
    assert torch.equal(before, _inputs(toy_model, cursor))
    assert torch.equal(before, _inputs(toy_model, cursor, torch.tensor([3])))
    toy_model.set_number_tokens(FakeTokenizer([str(i) for i in range(30)] + ["\u012037", "x7", "200"]))
    assert torch.equal(before, _inputs(toy_model))


def test_number_tokens_are_the_integers_0_to_100(toy_model):
    tok = FakeTokenizer(["12", "\u012037", "x7", "200", "\u00b2"])
    toy_model.set_number_tokens(tok)
    values = {w: int(toy_model.number_value[i]) for w, i in tok.get_vocab().items()}
    assert values["12"] == 12 and values["\u012037"] == 37
    assert values["x7"] == values["200"] == values["\u00b2"] == values["<ans>"] == -1


def test_cursor_and_numbers_reach_the_logits_once_trained(toy_model):
    with torch.no_grad():
        toy_model.cursor_pos.weight.normal_()
        toy_model.cursor_cells.weight.normal_()
        toy_model.cursor_target.weight.normal_()
        toy_model.cursor_runs.weight.normal_()
        toy_model.number_out.weight.normal_()
        toy_model.number_in.weight.normal_()
    toy_model.set_number_tokens(FakeTokenizer([str(i) for i in range(10)]))
    base = _inputs(toy_model)
    cursor = torch.tensor([[[NO_CURSOR, NO_CURSOR]] * 3 + [[0, 5], [2, 1]]])
    moved = _inputs(toy_model, cursor)
    assert not torch.allclose(base[:, -2:], moved[:, -2:]) and torch.allclose(base[:, :3], moved[:, :3])
    asked = _inputs(toy_model, cursor, torch.tensor([2]))  # the asked class's map reaches the descriptor tokens
    assert not torch.allclose(asked[:, -2:], moved[:, -2:]) and torch.allclose(asked[:, :3], moved[:, :3])


def test_dense_head_ignores_unknown_classes(toy_model):
    toy_model.train()
    x = torch.rand(2, 1, 3, 64, 64)
    ids = torch.tensor([[3, 5, 9, 4, 7, 8]] * 2)
    labels = ids.clone()
    target = torch.randint(0, 2, (2, 1, TOY.get("dense_classes", 8), 16, 16))
    kw = dict(labels=labels, g=torch.tensor([2, 2]), s=torch.tensor([0.5, 0.5]))
    known = toy_model(x, ids, torch.ones_like(ids), dense=target, **kw)["dense_loss"]
    unknown = target.clone()
    unknown[:, :, 3:] = 255
    partial = toy_model(x, ids, torch.ones_like(ids), dense=unknown, **kw)["dense_loss"]
    assert torch.isfinite(known) and torch.isfinite(partial) and not torch.isclose(known, partial)
    flipped = target.clone()
    flipped[:, :, 3:] = 1 - target[:, :, 3:]  # the known classes changed: the loss must see it
    assert not torch.isclose(known, toy_model(x, ids, torch.ones_like(ids), dense=flipped, **kw)["dense_loss"])


def test_training_cursor_matches_what_generation_computes():
    """The trainer tells each token the cursor Runtime.generate will compute from the decoded text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    rng = np.random.default_rng(4)
    samples = [make_sample(rng, "[SEG]", 64) for _ in range(6)]
    texts = [build_prompt(s.token, s.question, 1) + s.answer for s in samples]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "<eos>",
                                                                                        "<image>", "<ans>"]))
    for s in samples:
        prompt = tok.encode(build_prompt(s.token, s.question, 1)).ids
        full = tok.encode(build_prompt(s.token, s.question, 1) + s.answer).ids
        cursor = answer_cursor(tok, full, len(prompt), 16)
        assert cursor[len(prompt) - 1] == (0, 0) and cursor[0] == (NO_CURSOR, NO_CURSOR)
        for p in range(len(prompt), len(full)):
            assert cursor[p] == descriptor_cursor(tok.decode(full[len(prompt):p + 1]), 16)


def test_continue_from_keeps_trained_weights_and_adds_new_modules(tmp_path, toy_config):
    torch.manual_seed(1)
    old = RsappVLM(toy_config)
    old.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file

    state = {k: v for k, v in load_file(tmp_path / "model.safetensors").items()
             if not k.startswith(("cursor_", "dense_head", "number_"))}
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    new = continue_from(tmp_path)
    assert all(torch.equal(new.state_dict()[k], v) for k, v in state.items())
    assert not any(m.weight.detach().any() for m in (new.cursor_pos, new.cursor_cells, new.cursor_target, new.cursor_runs))
    assert new.dense_head is not None


def test_row_ahead_reads_the_cursor_row_from_its_column_on():
    n, k = 16, 8
    cells = torch.rand(2, 2, k, n, n)
    cursor = torch.tensor([[[3, 5], [NO_CURSOR, NO_CURSOR]], [[16, 0], [0, 15]]])
    out = RsappVLM._row_ahead(cells, cursor).view(2, 2, n, 2, k)
    assert torch.equal(out[0, 0, : n - 5], cells[0, :, :, 3, 5:].permute(2, 0, 1))
    assert not out[0, 0, n - 5:].any()  # past the row's end
    assert not out[0, 1].any() and not out[1, 0].any()  # no cursor / all rows written
    assert torch.equal(out[1, 1, 0], cells[1, :, :, 0, 15]) and not out[1, 1, 1:].any()


def test_run_lengths_count_from_the_cursor():
    n = 16
    row = torch.zeros(n, 2)
    row[5:9, 0] = 0.9  # asked class on cells 5..8
    row[:, 1] = 0.9  # all changed
    ahead = torch.zeros(1, 3, n, 2)
    ahead[0, 0] = row[5:].new_zeros(n, 2).index_copy(0, torch.arange(n - 5), row[5:])  # cursor at col 5
    ahead[0, 1] = row  # cursor at col 0
    cursor = torch.tensor([[[2, 5], [2, 0], [16, 0]]])
    lengths = RsappVLM._run_lengths(ahead.flatten(2), cursor, n).view(1, 3, 4, n + 1).argmax(-1)
    assert lengths[0, 0].tolist() == [4, 11, 0, 0]  # 4 cells of the class, then 11 cells to the row's end
    assert lengths[0, 1].tolist() == [0, 16, 5, 0]
    assert lengths[0, 2].tolist() == [0, 0, 0, 0]  # all rows written


def test_class_hint_reaches_every_token_of_a_question_that_names_a_class(toy_model):
    """[VG] answers have no cursor: the asked class's map and profiles reach them through class_hint."""
    with torch.no_grad():
        toy_model.class_hint.weight.normal_()
    base = _inputs(toy_model)
    asked = _inputs(toy_model, seg_class=torch.tensor([3]))
    assert not torch.allclose(base, asked)
    assert torch.equal(base, _inputs(toy_model, seg_class=torch.tensor([-1])))  # no class named: no hint


def test_class_profiles_make_box_edges_readable():
    asked = torch.zeros(1, 16, 16)
    asked[0, 4:9, 2:6] = 1.0  # rows 4–8, columns 2–5
    p = RsappVLM._class_profiles(asked)[0, 256:].view(6, 16)
    columns, from_left, from_right, rows = p[0], p[1], p[2], p[3]
    assert columns.nonzero().flatten().tolist() == [2, 3, 4, 5] and rows.nonzero().flatten().tolist() == list(range(4, 9))
    assert int(from_left.argmax()) == 2 and int(from_right.nonzero().max()) == 5


def test_soft_number_loss_prefers_a_near_miss(toy_model):
    toy_model.set_number_tokens(FakeTokenizer([str(i) for i in range(40)]))
    label = torch.tensor([[int(toy_model.number_value.tolist().index(20))]])

    def loss_when_peaked_at(value):
        logits = torch.zeros(1, 1, toy_model.config.vocab_size)
        logits[0, 0, toy_model.number_value.tolist().index(value)] = 8.0
        return float(toy_model.soft_number_loss(logits, label))

    assert loss_when_peaked_at(20) < loss_when_peaked_at(21) < loss_when_peaked_at(30)
    words = torch.tensor([[4]])  # a label that is no number costs nothing here
    assert float(toy_model.soft_number_loss(torch.zeros(1, 1, toy_model.config.vocab_size), words)) == 0.0


def test_head_descriptor_reads_the_asked_class_or_the_change(toy_model):
    """mask_source "head": the dense head's cell map becomes the same Text4Seg text the LM would write."""
    from rsapp.model.modeling import Encoded
    from rsapp.tasks.descriptors import text_to_mask

    rt = Runtime.from_model(toy_model, tokenizer=None, quant="fp32")
    names = rt.config.dense_class_names
    cells = torch.zeros(1, 2, len(names), 16, 16)
    cells[0, 0, names.index("water"), 2:5, 3:9] = 0.9  # a pond on the first date
    cells[0, 1, names.index("water"), 2:5, 3:9] = 0.9
    cells[0, 1, names.index("building"), 10:12, 0:4] = 0.8  # built between the dates
    one = Encoded(torch.zeros(1, 1, 8), torch.zeros(1), torch.zeros(1), 1, 1, None,
                  torch.stack([cells[:, 0], torch.zeros_like(cells[:, 0])], 1), torch.zeros(1, 16, 16))
    text = rt.head_descriptor(one, names.index("water"), 1)
    grid, labels, warnings = text_to_mask(text, 16, ["others", "water"])
    assert not warnings and labels == ["others", "water"] and grid.sum() == 18 and grid[2:5, 3:9].all()
    assert rt.head_descriptor(one, -1, 1) is None  # no class named: the LM answers
    two = Encoded(torch.zeros(1, 1, 8), torch.zeros(1), torch.zeros(1), 1, 1, None, cells,
                  (cells[:, 1] - cells[:, 0]).abs().amax(1))
    grid, labels, _ = text_to_mask(rt.head_descriptor(two, -1, 2), 16)
    assert labels == ["others", "building"] and grid.sum() == 8 and grid[10:12, 0:4].all()
