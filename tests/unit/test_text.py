import numpy as np
import pytest
import torch

from zooflow.data import textfolder
from zooflow.errors import InputRejected
from zooflow.data.tokenize import CLS, EOS, PAD, UNK, book_english, build_vocab, encode, get_tokenizer
from zooflow.models import bert as bert_models
from zooflow.models.pretrained import PretrainedWeightsMissing
from zooflow.models.transformer import TransformerClassifier, param_groups
from zooflow.models.word_vectors import load_vectors


def test_book_preprocessing_keeps_only_periods_and_commas():
    assert book_english("Great movie!!! <br />Loved it, really.") == ["great", "movie", "loved", "it", ",", "really", "."]


@pytest.mark.parametrize("name", ["janome", "sudachi", "fugashi"])
def test_japanese_tokenizers_split_words_and_fold_width(name):
    tokens = get_tokenizer(name)("この映画は素晴らしかった。ＡＢＣ")
    assert "映画" in tokens and "abc" in tokens and len(tokens) >= 5


def test_unknown_tokenizer_is_named():
    with pytest.raises(ValueError, match="unknown tokenizer 'mecab'"):
        get_tokenizer("mecab")


def test_vocab_and_encoding():
    vocab = build_vocab(["good good film", "bad film", "good"], book_english, min_freq=2)
    assert vocab[:4] == ["<pad>", "<unk>", "<cls>", "<eos>"] and vocab[4:] == ["good", "film"]
    index = {w: i for i, w in enumerate(vocab)}
    assert encode("good awful film", book_english, index, 8) == [CLS, 4, UNK, 5, EOS, PAD, PAD, PAD]
    assert encode("good " * 20, book_english, index, 5) == [CLS, 4, 4, 4, EOS]


@pytest.mark.parametrize("header", [True, False])
def test_word_vectors_from_a_text_file(tmp_path, header):
    lines = (["3 2"] if header else []) + ["good 1.0 2.0", "bad -1 0.5", "film 0 0"]
    path = tmp_path / "vectors.txt"
    path.write_text("\n".join(lines) + "\n")
    matrix = load_vectors(str(path), ["<pad>", "good", "unseen", "bad"])
    assert matrix.shape == (4, 2)
    assert np.allclose(matrix, [[0, 0], [1, 2], [0, 0], [-1, 0.5]])


def test_packaged_glove_vectors_are_real():
    matrix = load_vectors("glove-6b-50d", ["<pad>", "good", "great", "terrible"])
    assert matrix.shape == (4, 50) and not matrix[0].any()
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cosine(matrix[1], matrix[2]) > cosine(matrix[1], matrix[3]) - 0.2 and cosine(matrix[1], matrix[2]) > 0.7


def test_missing_word_vectors_are_an_error():
    with pytest.raises(PretrainedWeightsMissing, match="neither a packaged vector set"):
        load_vectors("/nowhere/cc.ja.300.vec", ["a"])


def test_book_transformer_block_sizes():
    model = TransformerClassifier(vocab_size=1000, dim=300, max_length=256, num_classes=2)
    groups = {name: sum(p.numel() for p in params) for name, params in param_groups(model).items()}
    attention = 4 * 300 * 300 + 4 * 300          # q, k, v, out projections with biases, one head
    feed_forward = 300 * 1024 + 1024 + 1024 * 300 + 300
    layer_norms = 2 * 2 * 300
    assert groups == {"embedding": 1000 * 300, "encoder": 2 * (attention + feed_forward + layer_norms), "head": 602}
    logits, attention_maps = model(torch.randint(4, 1000, (3, 20)), return_attention=True)
    assert logits.shape == (3, 2) and attention_maps[0].shape == (3, 1, 20, 20)


def test_learned_embeddings_start_at_the_positions_scale_and_pretrained_ones_are_kept():
    # From scratch, a token's scaled embedding starts at unit scale per dimension like the
    # sinusoidal positions (torch's default N(0, 1) times sqrt(64) made it ~8, and the random
    # vectors of words seen once drowned what the model learned); padding is zero.
    torch.manual_seed(0)
    model = TransformerClassifier(vocab_size=2000, dim=64, max_length=48, num_classes=2)
    scaled = model.embedding.weight[1:] * model.scale
    assert 0.9 < scaled.std().item() < 1.1
    assert torch.count_nonzero(model.embedding.weight[PAD]) == 0
    vectors = np.random.default_rng(0).normal(0, 0.3, size=(50, 8)).astype(np.float32)
    pretrained = TransformerClassifier(vocab_size=50, dim=8, max_length=16, num_classes=2, vectors=vectors)
    assert torch.equal(pretrained.embedding.weight.detach(), torch.from_numpy(vectors))


def test_book_bert_has_the_books_parameter_count():
    from transformers import BertConfig

    model = bert_models.build_bert(2, "bert-base-uncased", config=BertConfig(num_labels=2))  # no download
    assert sum(p.numel() for p in model.parameters()) == 109_483_778


def test_packaged_minilm_bert_loads_offline_and_book_freezing_groups():
    model = bert_models.build_bert(2, "minilm-l6")
    groups = bert_models.param_groups(model)
    assert len(model.bert.bert.encoder.layer) == 6
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for g in groups.values() for p in g) == total
    assert sum(p.numel() for p in groups["last_layer"]) == sum(p.numel() for p in model.bert.bert.encoder.layer[-1].parameters())


def test_unavailable_bert_checkpoint_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsMissing, match="Hugging Face cache"):
        bert_models.build_bert(2, "tohoku-nlp/bert-base-japanese-v3")


def test_japanese_bert_builds_offline_from_a_tiny_config(tmp_path):
    """The Japanese path: BertJapaneseTokenizer (MeCab via fugashi + unidic-lite) + a BERT."""
    from transformers import BertConfig, BertJapaneseTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "この", "映画", "は", "素晴らしい", "。"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertJapaneseTokenizer(str(tmp_path / "vocab.txt"), word_tokenizer_type="mecab",
                                      mecab_kwargs={"mecab_dic": "unidic_lite"})
    ids = tokenizer(["この映画は素晴らしい。"], return_tensors="pt")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[0].tolist())[1:3] == ["この", "映画"]
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    model = bert_models.build_bert(2, "tiny", config=config)
    assert model(ids).shape == (1, 2)


def test_table_import_names_the_bad_row(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\ngood\tpos\n \tneg\n", encoding="utf-8")
    with pytest.raises(textfolder.TextDataError, match="row 3 has an empty text"):
        textfolder.read_table(path)
    path.write_bytes("text\tlabel\ngood\tpos\n".encode() + "悪い\tneg\n".encode("shift_jis"))
    with pytest.raises(textfolder.TextDataError, match="line 3 is not UTF-8"):
        textfolder.read_table(path)


def test_text_manifest_flags_bad_files(tmp_path):
    textfolder.write_split(tmp_path, "train", ["fine", "also fine"], ["pos", "neg"])
    textfolder.write_split(tmp_path, "test", ["ok", "Fine  "], ["pos", "neg"], prefix="t")
    (tmp_path / "train" / "pos" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "train" / "neg" / "empty.txt").write_text("   ")
    table = textfolder.manifest(tmp_path).set_index("path")
    assert not table.loc["train/pos/latin1.txt", "utf8"] and "not UTF-8" in table.loc["train/pos/latin1.txt", "error"]
    assert table.loc["train/neg/empty.txt", "chars"] == 0
    assert table.loc["test/neg/t00001.txt", "in_other_split"]  # "Fine  " is "fine" again
    assert textfolder.japanese_share("これはペンです") == 1.0 and textfolder.japanese_share("abc") == 0.0


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"text\tlabel\n", "has a header but no rows"),
    (b"text\tlabel\ngood\tpos\nbad\tneg\textra\n", "line 3 has 3 fields where the header has 2"),
    (b'text\tlabel\ngood\tpos\n"bad\tneg\nfine\tpos\n', r"line 3 opens a quoted field"),
    (b"review\tlabel\ngood\tpos\n", r"missing \['text'\]"),
    (b"text\tlabel\ngood\t\n", "row 2 has an empty label"),
    (b"text\tlabel\tsplit\ngood\tpos\tdev\n", "row 2 has split 'dev'"),
    (b"text\tlabel\ngood\t../../x\n", r"row 2: the label '../../x' is not allowed"),
    ("text\tlabel\ngood\tpos\n".encode("utf-16"), "is UTF-16"),
    ("text\tlabel\ncafé\tpos\n".encode("latin-1"), "line 2 is not UTF-8"),
])
def test_table_errors_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "reviews.tsv"
    path.write_bytes(content)
    with pytest.raises(InputRejected, match=message) as refused:  # TextDataError, or ImportRejected for names
        textfolder.read_table(path)
    assert "reviews.tsv" in str(refused.value)


def test_a_utf8_bom_is_accepted_and_rows_become_named_files(tmp_path):
    path = tmp_path / "reviews.tsv"
    rows = "".join(f"良い{i}\tポジティブ\ttrain\n悪い{i}\tネガティブ\ttest\n良い{i}t\tポジティブ\ttest\n悪い{i}t\tネガティブ\ttrain\n"
                   for i in range(2))
    path.write_bytes(("text\tlabel\tsplit\n" + rows).encode("utf-8-sig"))
    imported = textfolder.import_table(path, tmp_path / "out")
    assert imported.classes == ("ネガティブ", "ポジティブ")
    assert (tmp_path / "out" / "train" / "ポジティブ" / "row00002.txt").read_text() == "良い0"


def test_a_label_in_one_split_only_is_named(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\tsplit\na\tpos\ttrain\nb\tpos\ttest\nc\tneg\ttrain\n")
    with pytest.raises(InputRejected, match="'neg' is in train but missing from test"):
        textfolder.import_table(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
