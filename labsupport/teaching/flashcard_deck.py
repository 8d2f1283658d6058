"""The practice sheet's ten flashcards, reworded for this lab: (id, notebook, question, answer).

`notebook` is the two-digit number of the notebook at whose end the card is shown
(`labsupport.teaching.flashcards.show_flashcards`); the printable deck keeps this order.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["Card", "CARDS"]


class Card(NamedTuple):
    id: str
    notebook: str
    question: str
    answer: str


CARDS: tuple[Card, ...] = (
    Card("ddpm-slow", "02",
         "What makes DDPM sampling slow?",
         "Two properties of its reverse chain. It is stochastic: every step mixes in new Gaussian noise, so "
         "a step cannot grow much before the chain stops matching what the model learned. And it is Markovian: "
         "a step sees only the current x_t and moves to the next noise level, so no level can be skipped. "
         "With T = 1000 that means 1000 forward passes of the network, one after another, for every sample."),
    Card("ddim-update", "03",
         "Write down one DDIM step from level t to a cleaner level s.",
         "First estimate the clean image: x̂0 = (x_t − √(1 − ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t. Then noise it back "
         "to level s: x_s = √ᾱ_s·x̂0 + √(1 − ᾱ_s)·ε_θ(x_t, t). The one noise prediction serves both lines, "
         "and with η = 0 no new random noise enters."),
    Card("ddim-large-steps", "03",
         "Why does DDIM tolerate large steps when DDPM does not?",
         "Its step adds no random noise whose variance would pile up from step to step, and it is not "
         "limited to the neighbouring level: from x_t it estimates x̂0 and can re-noise to any cleaner s. "
         "Because the network learned to predict the noise at every level separately, calling it on a "
         "sparse subset of timesteps is legitimate."),
    Card("same-network", "04",
         "Do DDIM and DDPM need different trained networks?",
         "No. They are two samplers for one model. Training (regressing the added noise with the simple "
         "squared-error loss) is the same for both; only the sampling loop differs, so a network trained "
         "for DDPM can be sampled with DDIM, at any η, without retraining."),
    Card("cfg-blend", "05",
         "How does classifier-free guidance combine its two noise predictions?",
         "ε̃ = ε_uncond + w·(ε_cond − ε_uncond), with w the guidance scale. One network makes both "
         "predictions, once given the condition and once given the null condition; w stretches the step "
         "along the direction in which the condition pulls."),
    Card("cfg-training", "05",
         "What changes in training so that one network can serve classifier-free guidance?",
         "With a small probability (often about one example in ten) the label is swapped for a reserved "
         "null label, or left out. The network thus learns the conditional and the unconditional noise "
         "prediction at once, and a sampler can ask it for both and blend them."),
    Card("cfg-sweet-spot", "05",
         "Which guidance scales do production text-to-image systems usually pick, and what do they trade?",
         "Typically w between 5 and 10. Raising w makes samples follow the condition more closely but makes "
         "them less varied; far above that range (say 20) images look over-saturated and stereotyped. "
         "Below 1 the condition acts only weakly, and w = 0 samples unconditionally."),
    Card("guided-cost", "06",
         "How many network evaluations does one sample of guided DDIM with 50 steps take?",
         "100: each of the 50 steps needs a conditional and an unconditional prediction. That is still "
         "about ten times fewer than the 1000 evaluations of unguided DDPM with its full chain."),
    Card("pareto", "07",
         "Where do DDPM with 1000 steps, DDIM with 50 steps and a distilled 8-step sampler sit on the "
         "latency–quality frontier?",
         "DDPM-1000 is the slowest and marks the best quality reachable. DDIM-50 is the usual compromise: "
         "close to that quality for a twentieth of the network calls. A distilled 8-step sampler gives up "
         "visible quality to be fast enough for real-time use. Which point to choose depends on what the "
         "application can afford in time and in quality."),
    Card("fifty-steps", "03",
         "Why does “our model samples in 50 steps” not say enough on its own?",
         "The sampler has to be named too. At the same 50 steps DDPM and DDIM give samples of very different "
         "quality (DDIM holds up far better with few steps, thanks to its deterministic, non-Markovian "
         "update), so a step count alone fixes neither the cost per step nor the quality."),
)
