"""The A1111 API's request bodies, as pydantic models: the fields brushlink reads.

Unknown fields are ignored, as A1111 ignores them (AI-Render and webuiapi send many that only
A1111's extensions know). A field that is present but of the wrong type is a 422, with FastAPI's
``{"detail": [...]}`` naming it. ``None`` means "the model's default", where A1111 would use its
own (steps 50, CFG 7, 512x512): brushlink's models each have their own best settings.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


Parsed = TypeVar("Parsed", bound=Body)


async def parse(request: HttpRequest, model: type[Parsed]) -> tuple[dict[str, Any], Parsed]:
    """The JSON body as sent (for the ``parameters`` echo) and as the model reads it."""
    raw = await request.body()

    def read() -> tuple[dict[str, Any], Parsed]:
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError) as exc:
            raise RequestValidationError(
                [{"loc": ["body"], "msg": "The body is not valid JSON.", "type": "json_invalid"}]
            ) from exc
        if not isinstance(data, dict):
            raise RequestValidationError(
                [{"loc": ["body"], "msg": "The body must be a JSON object.", "type": "dict_type"}]
            )
        try:
            return data, model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc

    return await asyncio.to_thread(read)


class Txt2Img(Body):
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1  # -1: a random one
    sampler_name: str | None = None
    sampler_index: str | None = None  # the older name of the same field
    scheduler: str | None = None  # A1111 1.9+: the noise schedule ("karras")
    batch_size: int = Field(1, ge=1)
    n_iter: int = Field(1, ge=1)
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    tiling: bool = False
    denoising_strength: float | None = None
    override_settings: dict[str, Any] = Field(default_factory=dict)
    send_images: bool = True

    @property
    def sampler(self) -> str | None:
        return self.sampler_name or self.sampler_index


class Img2Img(Txt2Img):
    init_images: list[str] = Field(min_length=1)
    mask: str | None = None
    mask_blur: int | None = Field(None, ge=0)
    inpainting_fill: int = 0  # recorded only: brushlink's engines prepare the area themselves
    inpaint_full_res: bool = True  # "only masked": the model sees the mask's box and padding
    inpaint_full_res_padding: int = Field(32, ge=0)
    inpainting_mask_invert: int = 0
    resize_mode: int = 0
    include_init_images: bool = False


class Extras(Body):
    resize_mode: int = 0  # 0: scale by upscaling_resize; 1: to upscaling_resize_w x _h
    upscaling_resize: float = Field(2.0, gt=0)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"


class ExtrasSingle(Extras):
    image: str


class FileData(Body):
    data: str
    name: str = ""


class ExtrasBatch(Extras):
    imageList: list[FileData] = Field(min_length=1)  # noqa: N815 - A1111's spelling


class PngInfo(Body):
    image: str
