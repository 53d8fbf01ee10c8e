"""The text probe learns tokens with a known text alignment and fails on shuffled ones; the speaker
probe finds speakers in the tokens; codebook sets parse as documented."""
import pytest
import torch

from audiotok.benchmarks.probe_inputs import (
    ProbeExample,
    codebook_label,
    parse_codebook_sets,
)
from audiotok.benchmarks.speaker_probe import SpeakerProbeConfig, run_speaker_probe
from audiotok.benchmarks.text_probe import (
    ALPHABET,
    ProbeConfig,
    decode_greedy,
    encode_text,
    run_text_probe,
)
from audiotok.data.corpus.sentences import generate_sentences


def _examples(shuffle: bool) -> list[ProbeExample]:
    """Tokens = character ids, each repeated 3 times, at 50 Hz (optionally shuffled in time)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for text in generate_sentences(128, seed=0):
        ids = encode_text(text).repeat_interleave(3)
        if shuffle:
            ids = ids[torch.randperm(len(ids), generator=g)]
        out.append(ProbeExample(ids[None], 50.0, text))
    return out


@pytest.mark.parametrize("shuffle", [False, True])
def test_text_probe_learns_aligned_tokens_and_fails_on_shuffled(shuffle):
    torch.set_num_threads(1)
    examples = _examples(shuffle)
    config = ProbeConfig(size="tiny", steps=100, batch_size=16, lr=1e-2, negatives=4)
    result = run_text_probe(examples[:104], examples[104:], len(ALPHABET) + 1, config)
    assert result["negatives"] == 4 and result["utterances"] == 24
    if shuffle:
        assert result["cer"] > 0.6
        assert result["mi"] < 30
    else:
        assert result["cer"] < 0.15
        assert result["mi"] > 100  # matched transcripts far likelier than the negatives


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    h, space = ALPHABET.index("h") + 1, ALPHABET.index(" ") + 1
    ids = [0, h, h, 0, h, space, h, 0]  # "h", "h" (blank between), " ", "h"
    log_probs = torch.nn.functional.one_hot(torch.tensor(ids), len(ALPHABET) + 1).float().log()
    assert decode_greedy(log_probs, len(ids)) == "hh h"
    assert decode_greedy(log_probs, 3) == "h"  # only the valid frames count


def test_speaker_probe_finds_the_speaker_in_token_statistics():
    gen = torch.Generator().manual_seed(0)
    examples = []
    for s in range(4):  # speaker s favours codes 8s..8s+7 in codebook 1; codebook 0 is noise
        for u in range(12):
            noise = torch.randint(0, 32, (1, 40), generator=gen)
            voice = 8 * s + torch.randint(0, 8, (1, 40), generator=gen)
            examples.append(ProbeExample(torch.cat([noise, voice]), 50.0, None, f"spk{s}", f"{s}-{u}"))
    train = [e for e in examples if int(e.id.split("-")[1]) < 9]
    test = [e for e in examples if int(e.id.split("-")[1]) >= 9]
    config = SpeakerProbeConfig(steps=60)
    both = run_speaker_probe(train, test, 32, config)
    assert both["accuracy"] == 1.0 and both["chance"] == 0.25
    def noise_only(subset):
        return [ProbeExample(e.codes[:1], e.frame_rate, None, e.speaker, e.id) for e in subset]

    assert run_speaker_probe(noise_only(train), noise_only(test), 32, config)["accuracy"] < 0.7


def test_codebook_sets_parse_and_label():
    assert parse_codebook_sets("all;0;1-7", 8) == [list(range(8)), [0], list(range(1, 8))]
    assert parse_codebook_sets("0,2;5-20", 8) == [[0, 2], [5, 6, 7]]
    assert parse_codebook_sets("1-7", 1) == []  # nothing left for a one-codebook tokenizer
    with pytest.raises(ValueError, match="bad codebook set"):
        parse_codebook_sets("first", 8)
    assert [codebook_label(c, 8) for c in ([*range(8)], [0], [*range(1, 8)], [0, 2])] == ["all", "0", "1-7", "0,2"]
