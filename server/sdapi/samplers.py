"""A1111's sampler and scheduler names, and the brushlink scheduler each one runs as.

A1111 clients name samplers as its UI does ("Euler a", "DPM++ 2M Karras") or by their old
k-diffusion aliases ("k_euler_a"). A name A1111 itself does not know is answered as A1111 answers
it: 404 with ``{"detail": "Sampler not found"}`` (AI-Render shows that sentence's own advice).
A name it knows becomes the request's ``scheduler`` for the model that runs the job: a
checkpoint takes the diffusers scheduler of the same family; a model with fewer schedulers (the
built-in model has ``ddim`` and ``dpm``) takes the nearest one it has, and the job's ``info``
says which ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from brushlink.plugin.capabilities import ModelCard


@dataclass(frozen=True)
class Sampler:
    name: str  # as A1111 spells it
    aliases: tuple[str, ...]
    # brushlink scheduler names, best first: the first one the model accepts is used
    schedulers: tuple[str, ...]


SAMPLERS = (
    Sampler("Euler a", ("k_euler_a", "k_euler_ancestral"), ("euler_a", "ddim")),
    Sampler("Euler", ("k_euler",), ("euler", "ddim")),
    Sampler("LMS", ("k_lms",), ("lms", "ddim")),
    Sampler("Heun", ("k_heun",), ("heun", "ddim")),
    Sampler("DPM++ 2M", ("k_dpmpp_2m",), ("dpmpp_2m", "dpm")),
    Sampler("DPM++ 2M Karras", ("k_dpmpp_2m_ka",), ("dpmpp_2m_karras", "dpm")),
    Sampler("DDIM", ("ddim",), ("ddim",)),
    Sampler("PNDM", ("pndm",), ("pndm", "ddim")),
    Sampler("PLMS", ("plms",), ("pndm", "ddim")),
    Sampler("UniPC", ("unipc",), ("unipc", "dpm")),
    Sampler("LCM", ("k_lcm",), ("lcm", "ddim")),
)

# A1111 1.9+ names the noise schedule apart from the sampler ("scheduler": "karras").
SCHEDULES = (("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"))
KARRAS = {"DPM++ 2M": "DPM++ 2M Karras"}


class SamplerNotFound(LookupError):
    """A sampler name A1111 would not know either."""


def find(name: str) -> Sampler:
    wanted = name.strip()
    for sampler in SAMPLERS:
        if wanted in (sampler.name, *sampler.aliases) or wanted.lower() == sampler.name.lower():
            return sampler
    raise SamplerNotFound(name)


def choose(name: str | None, schedule: str | None, card: ModelCard | None) -> str | None:
    """The brushlink scheduler for an A1111 sampler (and schedule) on a model; None leaves the
    model's own. Raises ``SamplerNotFound`` for a name A1111 does not know."""
    if not name:
        return None
    sampler = find(name)
    if (schedule or "").lower() == "karras" and sampler.name in KARRAS:
        sampler = find(KARRAS[sampler.name])
    accepted = card.accepts.schedulers if card is not None else []
    if not accepted:
        return None  # the model takes no scheduler (a weight-free engine)
    return next((s for s in sampler.schedulers if s in accepted), None)


def sampler_list() -> list[dict[str, object]]:
    """``GET /samplers`` as A1111 answers it."""
    return [
        {"name": s.name, "aliases": list(s.aliases), "options": {"brushlink": s.schedulers[0]}}
        for s in SAMPLERS
    ]


def schedule_list() -> list[dict[str, object]]:
    """``GET /schedulers`` as A1111 answers it."""
    return [
        {
            "name": name,
            "label": label,
            "aliases": None,
            "default_rho": -1.0,
            "need_inner_model": False,
        }
        for name, label in SCHEDULES
    ]
