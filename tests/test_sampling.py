"""Sampling controls: top-k, top-p, temperature 0, beam search, --in-key, --max-repeat, seeds and output settings.

The CLI tests run the small LSTM of the `small_model` fixture (trained on Bach melodies).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import mido
import pretty_midi
import pytest
import torch

from musicgen.checkpoint import load_model
from musicgen.cli import cli
from musicgen.export import _melody_midi_bytes, _pretty_midi_bytes
from musicgen.generation import longest_repeat
from musicgen.keys import scale_pitch_classes
from musicgen.sampling import (
    SamplingError,
    beam_search,
    check_sampling_options,
    choose_next,
    keep_top_k,
    keep_top_p,
    sample_continuations,
)
from musicgen.seed import parse_seed
from musicgen.tokenizer import MelodyTokenizer

TOKENIZER = MelodyTokenizer()


def generate(runner, model: Path, output_dir: Path, *args: str):
    return runner.invoke(cli, ["generate", "--model", str(model), "--output-dir", str(output_dir), *args])


def written_paths(result) -> list[Path]:
    return [Path(line) for line in result.stdout.splitlines() if line.endswith(".mid")]


def one_line_error(result) -> str:
    """Return the only 'Error:' line of a failed run, checking that no traceback was shown."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def file_tokens(path: Path) -> list[int]:
    return TOKENIZER.encode(str(path), add_special_tokens=False)


def onset_pitches(path: Path) -> list[int]:
    notes = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    return [note.pitch for note in sorted(notes, key=lambda note: (note.start, note.pitch))]


def sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def biased_checkpoint(source: Path, destination: Path, token: str, delta: float) -> Path:
    """Copy a checkpoint with `delta` added to the output bias of one token."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["model_state"]["output.bias"][payload["tokenizer"]["vocabulary"].index(token)] += delta
    torch.save(payload, destination)
    return destination


@pytest.fixture(scope="module")
def network(small_model):
    model, tokenizer, _ = load_model(small_model, torch.device("cpu"))
    return model, tokenizer


# -- the choice of one token ---------------------------------------------------------------


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = torch.tensor([[2.0, 1.0, 1.0, 1.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    for k in range(1, 7):
        kept = torch.isfinite(keep_top_k(logits, k))
        assert kept.sum(dim=1).tolist() == [k, k]
    assert torch.isfinite(keep_top_k(logits, 2)[0]).nonzero().flatten().tolist()[0] == 0  # the largest stays
    assert torch.isfinite(keep_top_k(logits, 100)).all()


def test_top_k_draws_only_the_k_most_likely():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.1, 3.0, 0.2, 2.5, 0.3, 2.9]]).expand(2000, -1)
    drawn = set(choose_next(logits, 1.0, top_k=3, generator=generator).tolist())
    assert drawn == {1, 3, 5}


@pytest.mark.parametrize(("p", "expected"), [
    (0.3, {2}),  # the most likely token alone holds 0.5
    (0.5, {2}),
    (0.6, {2, 0}),  # 0.5 + 0.3 = 0.8 reaches 0.6
    (0.85, {2, 0, 3}),  # 0.5 + 0.3 + 0.15 = 0.95
    (0.99, {2, 0, 3, 1}),
    (1.0, {2, 0, 3, 1}),
])
def test_top_p_keeps_smallest_set_reaching_p(p, expected):
    probs = torch.tensor([0.3, 0.05, 0.5, 0.15])
    kept = torch.isfinite(keep_top_p(probs.log().unsqueeze(0), p))[0]
    assert set(kept.nonzero().flatten().tolist()) == expected


def test_top_p_matches_a_sorted_reference():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn((50, 40), generator=generator) * 2
    for p in (0.1, 0.5, 0.9, 0.999):
        kept = torch.isfinite(keep_top_p(logits, p))
        for row in range(len(logits)):
            probs = torch.softmax(logits[row].double(), dim=0).tolist()
            ranked = sorted(range(len(probs)), key=lambda index: -probs[index])
            mass, expected = 0.0, set()
            for index in ranked:
                expected.add(index)
                mass += probs[index]
                if mass >= p:
                    break
            assert set(kept[row].nonzero().flatten().tolist()) == expected


def test_temperature_zero_is_argmax():
    logits = torch.randn((64, 66), generator=torch.Generator().manual_seed(1))
    assert torch.equal(choose_next(logits, 0.0), logits.argmax(dim=-1))
    assert torch.equal(choose_next(logits, 0.0, top_k=5, top_p=0.5), logits.argmax(dim=-1))


@pytest.mark.parametrize(("settings", "message"), [
    ({"top_p": 0.0}, "--top-p must be in (0, 1] (received 0.0)"),
    ({"top_p": 1.5}, "--top-p must be in (0, 1] (received 1.5)"),
    ({"top_p": -0.2}, "--top-p must be in (0, 1] (received -0.2)"),
    ({"top_k": 0}, "--top-k must be at least 1 (received 0)"),
    ({"temperature": -1.0}, "--temperature must be a finite number >= 0 (received -1.0)"),
    ({"temperature": float("nan")}, "--temperature must be a finite number >= 0 (received nan)"),
    ({"max_repeat": 0}, "--max-repeat must be at least 1 (received 0)"),
    ({"beam_size": 0}, "--beam-size must be in 1..64 (received 0)"),
    ({"beam_size": 2, "num": 3}, "--num 3 is larger than --beam-size 2"),
    ({"beam_size": 2, "top_k": 3}, "drop --top-k and --top-p"),
])
def test_bad_sampling_settings(settings, message):
    with pytest.raises(SamplingError) as raised:
        check_sampling_options(**settings)
    assert message in str(raised.value)


# -- the generation loop on a trained model -------------------------------------------------


def greedy_by_hand(model, tokenizer, seed_ids: list[int], steps: int) -> list[int]:
    """Greedy decoding written out plainly: read the prompt, then feed back the argmax each step."""
    banned = [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id]
    with torch.no_grad():
        logits, state = model(torch.tensor([[tokenizer.bos_id, *seed_ids]]))
        tokens = []
        for _ in range(steps):
            last = logits[0, -1].clone()
            last[banned] = -torch.inf
            if ([*seed_ids, *tokens] or [tokenizer.bos_id])[-1] == tokenizer.rest_id:
                last[tokenizer.hold_id] = -torch.inf
            tokens.append(int(last.argmax()))
            logits, state = model(torch.tensor([[tokens[-1]]]), state)
    return tokens


def test_temperature_zero_equals_greedy_by_hand(network):
    model, tokenizer = network
    seed_ids = parse_seed("C4 - E4 - G4", tokenizer).ids
    [sampled] = sample_continuations(model, tokenizer, seed_ids, 48, 1, 0.0)
    assert sampled == greedy_by_hand(model, tokenizer, seed_ids, 48)


@pytest.mark.parametrize("controls", [{}, {"scale": scale_pitch_classes("D minor"), "max_repeat": 1}])
def test_beam_one_equals_greedy(network, controls):
    model, tokenizer = network
    seed_ids = parse_seed("D4 F4 A4", tokenizer).ids
    greedy = sample_continuations(model, tokenizer, seed_ids, 64, 1, 0.0, **controls)
    assert beam_search(model, tokenizer, seed_ids, 64, beam_size=1, **controls) == greedy


def sequence_log_prob(model, tokenizer, seed_ids: list[int], continuation: list[int]) -> float:
    banned = [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id]
    with torch.no_grad():
        logits, _ = model(torch.tensor([[tokenizer.bos_id, *seed_ids, *continuation]]))
    logits = logits[0, len(seed_ids) : len(seed_ids) + len(continuation)].clone()
    logits[:, banned] = -torch.inf
    previous = [tokenizer.bos_id, *seed_ids, *continuation][len(seed_ids) : len(seed_ids) + len(continuation)]
    for step, token in enumerate(previous):
        if token in (tokenizer.rest_id, tokenizer.bos_id):
            logits[step, tokenizer.hold_id] = -torch.inf
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(log_probs[torch.arange(len(continuation)), torch.tensor(continuation)].sum())


def test_wider_beam_finds_likelier_melodies(network):
    model, tokenizer = network
    seed_ids = parse_seed("G4 - - - B4", tokenizer).ids
    [greedy] = beam_search(model, tokenizer, seed_ids, 32, beam_size=1)
    beams = beam_search(model, tokenizer, seed_ids, 32, beam_size=5, num=5)
    scores = [sequence_log_prob(model, tokenizer, seed_ids, beam) for beam in beams]
    assert len({tuple(beam) for beam in beams}) == 5
    assert scores == sorted(scores, reverse=True)
    assert scores[0] >= sequence_log_prob(model, tokenizer, seed_ids, greedy) - 1e-4


def test_same_generator_seed_gives_same_samples(network):
    model, tokenizer = network
    seed_ids = parse_seed("E4 G4", tokenizer).ids
    runs = [sample_continuations(model, tokenizer, seed_ids, 64, 4, 1.0, torch.Generator().manual_seed(seed),
                                 top_k=10, top_p=0.95, max_repeat=3) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_max_repeat_breaks_runs_of_a_favoured_pitch(small_model, runner, tmp_path):
    favour_c4 = biased_checkpoint(small_model, tmp_path / "c4.pt", "NOTE_ON_60", 12.0)
    args = ["--seed", "C4 C4 C4", "--length", "96", "--num", "4", "--random-seed", "2"]
    unguarded = written_paths(generate(runner, favour_c4, tmp_path / "free", *args))
    guarded = generate(runner, favour_c4, tmp_path / "guarded", *args, "--max-repeat", "2")
    assert guarded.exit_code == 0, guarded.output

    assert longest_repeat(onset_pitches(unguarded[0]))[1] > 10
    for path in written_paths(guarded):
        pitches = onset_pitches(path)
        assert pitches[:3] == [60, 60, 60]  # the seed is kept, although it repeats C4 three times
        assert pitches[3] != 60
        assert longest_repeat(pitches[3:])[1] <= 2
        assert sidecar(path)["max_repeat"] == 2


def test_hold_never_follows_a_rest(small_model, tmp_path):
    favour_hold = biased_checkpoint(small_model, tmp_path / "hold.pt", "HOLD", 12.0)
    model, tokenizer, _ = load_model(favour_hold, torch.device("cpu"))
    for seed in ("C4 R", "R R", "C4 - R - - E4"):
        seed_ids = parse_seed(seed, tokenizer).ids
        sampled = sample_continuations(model, tokenizer, seed_ids, 48, 8, 1.5, torch.Generator().manual_seed(1))
        sampled += beam_search(model, tokenizer, seed_ids, 48, beam_size=4, num=4)
        for row in sampled:
            melody = [*seed_ids, *row]
            pairs = list(zip(melody, melody[1:]))
            assert (tokenizer.rest_id, tokenizer.hold_id) not in pairs, seed
            assert sum(token == tokenizer.hold_id for token in row) > len(row) // 2  # the bias still shows


@pytest.mark.parametrize("beam", [False, True])
def test_event_melodies_last_the_requested_steps(beam):
    from musicgen.config import ModelConfig
    from musicgen.models import build_model
    from musicgen.tokenizer import EventTokenizer

    tokenizer = EventTokenizer()
    torch.manual_seed(0)
    model = build_model(ModelConfig(tokenizer.vocab_size, hidden_size=16, layers=1, embedding_size=8)).eval()
    seed_ids = tokenizer.encode_text_seed(parse_seed("C4:4", MelodyTokenizer()).ids, MelodyTokenizer())
    for steps in (1, 47, 96):
        if beam:
            rows = beam_search(model, tokenizer, seed_ids, steps, beam_size=3, num=3)
        else:
            rows = sample_continuations(model, tokenizer, seed_ids, steps, 6, 1.0, torch.Generator().manual_seed(steps))
        for row in rows:
            # Tokens such as NOTE_ON and VELOCITY take no time, so a row has more tokens than steps.
            # An untrained model's beams may favour timeless tokens until the token cap stops them.
            if beam:
                assert tokenizer.time_steps(row) <= steps, (steps, tokenizer.token_names(row))
            else:
                assert tokenizer.time_steps(row) == steps, (steps, tokenizer.token_names(row))


def test_melody_rows_are_one_token_per_step(network):
    model, tokenizer = network
    rows = sample_continuations(model, tokenizer, parse_seed("C4", tokenizer).ids, 40, 3, 1.0,
                                torch.Generator().manual_seed(0))
    assert [len(row) for row in rows] == [40, 40, 40]


# -- --in-key -------------------------------------------------------------------------------


def test_in_key_keeps_new_notes_in_the_scale(small_model, runner, tmp_path):
    result = generate(runner, small_model, tmp_path, "--seed", "F#4 B4 G#4", "--key", "D minor", "--in-key",
                      "--length", "128", "--num", "4", "--random-seed", "3", "--temperature", "1.5")
    assert result.exit_code == 0, result.output
    allowed = scale_pitch_classes("D minor")
    for path in written_paths(result):
        pitches = onset_pitches(path)
        assert pitches[:3] == [66, 71, 68]  # the seed is kept, although it lies outside D minor
        assert len(pitches) > 10
        assert {pitch % 12 for pitch in pitches[3:]} <= allowed
        assert sidecar(path)["in_key"] == "D minor"


def test_in_key_estimates_the_seed_key(small_model, runner, tmp_path):
    result = generate(runner, small_model, tmp_path, "--seed", "C4:2 E4:2 G4:2 C5:4 B4:2 D5:2 G4:4", "--in-key",
                      "--length", "128", "--num", "2", "--random-seed", "4", "--temperature", "1.5")
    assert result.exit_code == 0, result.output
    for path in written_paths(result):
        assert sidecar(path)["in_key"] == "C major"
        assert {pitch % 12 for pitch in onset_pitches(path)} <= scale_pitch_classes("C major")


def test_unrestricted_output_leaves_the_scale(small_model, runner, tmp_path):
    # The check above can fail: without --in-key this model writes notes outside C major.
    result = generate(runner, small_model, tmp_path, "--seed", "C4:2 E4:2 G4:2 C5:4 B4:2 D5:2 G4:4",
                      "--length", "128", "--num", "2", "--random-seed", "4", "--temperature", "1.5")
    pitch_classes = {pitch % 12 for path in written_paths(result) for pitch in onset_pitches(path)}
    assert not pitch_classes <= scale_pitch_classes("C major")


# -- the seed and the written settings -----------------------------------------------------


SEED = "C4:4 R F#4:2 - R Bb3 C4 C4 C4"


@pytest.mark.parametrize("controls", [
    ["--top-k", "3"],
    ["--top-p", "0.5"],
    ["--temperature", "0"],
    ["--beam-size", "3", "--num", "2"],
    ["--in-key", "--key", "D major"],
    ["--max-repeat", "1"],
    ["--top-k", "5", "--top-p", "0.9", "--in-key", "--max-repeat", "2", "--stop-at-eos"],
])
def test_seed_kept_verbatim(small_model, runner, tmp_path, controls):
    result = generate(runner, small_model, tmp_path, "--seed", SEED, "--length", "32", "--random-seed", "5", *controls)
    assert result.exit_code == 0, result.output
    seed_ids = parse_seed(SEED, TOKENIZER).ids
    for path in written_paths(result):
        assert file_tokens(path)[: len(seed_ids)] == seed_ids
        assert sidecar(path)["seed_steps"] == len(seed_ids)


def test_settings_are_recorded_and_regenerate_the_file(small_model, runner, tmp_path):
    args = ["--seed", "A4 C5 E5", "--length", "64", "--top-k", "8", "--top-p", "0.9", "--in-key", "--max-repeat", "2",
            "--program", "violin", "--tempo", "90", "--velocity", "100", "--random-seed", "11"]
    [first] = written_paths(generate(runner, small_model, tmp_path, *args))
    [again] = written_paths(generate(runner, small_model, tmp_path, *args))
    assert first != again
    assert first.read_bytes() == again.read_bytes()

    settings = sidecar(first)
    expected = {"top_k": 8, "top_p": 0.9, "beam_size": None, "in_key": "A minor", "max_repeat": 2, "program": 40,
                "instrument": "Violin", "velocity": 100, "tempo_bpm": 90.0, "random_seed": 11, "mode": "many-to-many"}
    assert {name: settings[name] for name in expected} == expected
    texts = [message.text for track in mido.MidiFile(first).tracks for message in track if message.type == "text"]
    assert json.loads(texts[0].removeprefix("musicgen ")) == settings

    midi = pretty_midi.PrettyMIDI(str(first))
    assert midi.instruments[0].program == 40
    assert {note.velocity for note in midi.instruments[0].notes} == {100}
    assert midi.get_tempo_changes()[1].tolist() == pytest.approx([90.0])


@pytest.mark.parametrize(("program", "number"), [("41", 41), ("viola", 41), ("Acoustic Grand Piano", 0), ("FLUTE", 73)])
def test_program_by_number_or_name(small_model, runner, tmp_path, program, number):
    result = generate(runner, small_model, tmp_path, "--seed", "C4", "--length", "16", "--program", program)
    assert result.exit_code == 0, result.output
    [path] = written_paths(result)
    assert pretty_midi.PrettyMIDI(str(path)).instruments[0].program == number


@pytest.mark.parametrize(("args", "expected"), [
    (["--top-p", "0"], "Invalid value for '--top-p': 0.0 is not in the range 0<x<=1"),
    (["--top-p", "1.5"], "Invalid value for '--top-p': 1.5 is not in the range 0<x<=1"),
    (["--top-k", "0"], "Invalid value for '--top-k': 0 is not in the range x>=1"),
    (["--beam-size", "0"], "Invalid value for '--beam-size': 0 is not in the range 1<=x<=64"),
    (["--max-repeat", "0"], "Invalid value for '--max-repeat': 0 is not in the range x>=1"),
    (["--beam-size", "2", "--num", "3"], "--num 3 is larger than --beam-size 2"),
    (["--beam-size", "2", "--top-p", "0.9"], "drop --top-k and --top-p"),
    (["--program", "128"], "invalid --program 128: General MIDI programs are 0..127"),
    (["--program", "violn"], "unknown --program 'violn' (did you mean Violin, Viola?)"),
    (["--program", "kazoo"], "give a General MIDI number 0..127 or an instrument name such as 'Violin'"),
    (["--key", "H major", "--in-key"], "invalid --key 'H major': expected a tonic and major or minor, one of C major"),
    (["--key", "D minor"], "--key does nothing here because this model is many-to-many"),
    (["--style", "bach"], "--style needs a model conditioned on style; this model is many-to-many"),
    (["--first-note", "D4"], "--first-note needs a model conditioned on first-note"),
])
def test_generate_bad_control_values(small_model, runner, tmp_path, args, expected):
    output_dir = tmp_path / "out"
    line = one_line_error(generate(runner, small_model, output_dir, "--seed", "C4", *args))
    assert expected in line
    assert not output_dir.exists() or not any(output_dir.iterdir())


def test_in_key_without_key_or_seed(small_model, runner, tmp_path):
    line = one_line_error(generate(runner, small_model, tmp_path / "out", "--in-key"))
    assert "--in-key needs a key: give --key (for example --key \"D minor\") or a --seed with notes" in line


def test_fast_midi_writer_matches_pretty_midi():
    rng = random.Random(0)
    for _ in range(60):
        ids = [rng.choice([TOKENIZER.rest_id, TOKENIZER.hold_id, TOKENIZER.hold_id, TOKENIZER.note_on_id(rng.randint(36, 96))])
               for _ in range(rng.randint(1, 300))]
        midi = TOKENIZER.decode(ids, tempo=rng.choice([120, 90, 133.3333, 47, 4]),
                                time_signature=rng.choice([(4, 4), (3, 4), (6, 8), (7, 8)]),
                                program=rng.randint(0, 127), velocity=rng.randint(1, 127))
        midi.text_events.append(pretty_midi.Text('musicgen {"random_seed": 1}', 0.0))
        fast = _melody_midi_bytes(midi)
        assert fast is not None
        assert fast == _pretty_midi_bytes(midi)
