"""The quality table's bookkeeping: bars judged from the numbers, Markdown and the model card rendered."""
from __future__ import annotations

from pathlib import Path

from labsupport.tools.evaluate import BARS, DIVERSITY_SCALES, check_bars, model_card, to_markdown


def fake_result(**changes) -> dict:
    res = {"n": 1000, "fid_n": 1000, "batch": 32, "seed": 0, "device": "cpu", "machine": "test", "torch": "x",
           "classifier_accuracy": 0.995, "guided_accuracy_w3": 0.99, "uncond_confidence": 0.93,
           "uncond_digit_shares": [0.1] * 10,
           "fid": {"DDIM-10": 9.0, "DDIM-20": 6.0, "DDIM-50": 5.0, "DDIM-100": 4.9, "DDPM-1000": 4.0},
           "diversity_digit": 7, "pixel_diversity": {str(w): 0.3 - 0.01 * i for i, w in enumerate(DIVERSITY_SCALES)},
           "feature_diversity": {str(w): 0.5 - 0.02 * i for i, w in enumerate(DIVERSITY_SCALES)},
           "binarized_diversity": {str(w): 0.4 - 0.01 * i for i, w in enumerate(DIVERSITY_SCALES)},
           "memorization": {"median_nn_samples": 9.0, "median_nn_heldout": 10.0, "ratio": 0.9}}
    res.update(changes)
    return res


def test_every_bar_is_met_by_a_good_result():
    bars = check_bars(fake_result())
    assert len(bars) == 9 and all(bars.values()), bars


def test_each_bar_fails_on_its_own_number():
    cases = {
        "classifier accuracy >= 99.0%": {"classifier_accuracy": BARS["classifier_accuracy"] - 1e-3},
        "guided accuracy (w=3) >= 97%": {"guided_accuracy_w3": 0.96},
        "unconditional confidence >= 0.90": {"uncond_confidence": 0.89},
        "every digit 5%-15% of unconditional samples": {"uncond_digit_shares": [0.16] + [0.84 / 9] * 9},
        "DDIM-10 FID worse than DDIM-50": {"fid": {"DDIM-10": 4.0, "DDIM-50": 5.0, "DDPM-1000": 4.0}},
        "DDIM-50 FID within 1.5x of DDPM-1000": {"fid": {"DDIM-10": 9.0, "DDIM-50": 6.1, "DDPM-1000": 4.0}},
        "classifier-feature diversity falls at every step of w = 1, 3, 5, 7, 10, 20": {
            "feature_diversity": {str(w): 0.5 - 0.02 * i + (0.1 if w == 20 else 0) for i, w in enumerate(DIVERSITY_SCALES)}},
        "binarized pixel diversity falls at every step of w = 1, 3, 5, 7, 10, 20": {
            "binarized_diversity": {str(w): 0.4 for w in DIVERSITY_SCALES}},
        "memorization ratio >= 0.8": {"memorization": {"median_nn_samples": 7.0, "median_nn_heldout": 10.0,
                                                       "ratio": 0.7}},
    }
    for bar, change in cases.items():
        bars = check_bars(fake_result(**change))
        assert [k for k, ok in bars.items() if not ok] == [bar], (bar, bars)


def test_markdown_and_model_card_show_the_numbers(tmp_path):
    res = fake_result()
    res["bars"] = check_bars(res)
    md = to_markdown(res)
    assert "| classifier-feature FID, DDPM-1000 | 4.00 |" in md and "99.50%" in md and "**no**" not in md
    grids = [tmp_path / "a.png", tmp_path / "b.png"]
    card = model_card(res, grids, tmp_path / "model_card.md")
    assert "parameters" in card and "a.png" in card and md in card


def test_ddpm_bar_reads_not_measured_until_its_row_exists():
    res = fake_result(fid={"DDIM-10": 9.0, "DDIM-50": 5.0})
    res["bars"] = check_bars(res)
    assert res["bars"]["DDIM-50 FID within 1.5x of DDPM-1000"] is None
    assert "| DDIM-50 FID within 1.5x of DDPM-1000 | not measured |" in to_markdown(res)


def test_pixel_std_rising_at_high_guidance_fails_no_bar():
    """The course's pixel standard deviation is reported, not judged: speckle at w = 20 raises it (seed 000)."""
    rising = {str(w): 0.3 - 0.01 * i + (0.05 if w == 20 else 0) for i, w in enumerate(DIVERSITY_SCALES)}
    res = fake_result(pixel_diversity=rising)
    assert all(check_bars(res).values())
    res["bars"] = check_bars(res)
    assert "pixel standard deviation" in to_markdown(res)


def test_model_card_section_names_the_extra_models_and_embeds_their_table(tmp_path):
    from labsupport.tools.evaluate_extra import model_card_section
    bare = model_card_section(tmp_path)
    for name in ("noisy_classifier_mnist", "autoencoder_mnist", "unet_latent", "labsupport train-latent"):
        assert name in bare
    assert "Not measured yet" in bare
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "extra.md").write_text("# title\n\n| bar | met |\n|---|---|\n| a row | yes |\n")
    (tmp_path / "evaluation" / "extra.json").write_text('{"n": 7, "fid_n": 5, "seed": 3, "device": "cpu"}')
    full = model_card_section(tmp_path)
    assert "| a row | yes |" in full and "(7 samples, FID on 5, seed 3, cpu)" in full and "# title" not in full
