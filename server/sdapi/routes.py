"""The A1111 web-UI API's routes under ``/sdapi/v1``: generation, progress and control.

Every job goes through the facade (``facade.py``) into the App's own submit path. Bodies are
parsed and validated by pydantic off the event loop (a body may carry tens of megabytes of
base64); images are decoded and encoded off it too. Errors answer in A1111's shape,
``{"detail": ...}``: FastAPI's 422 for a malformed body, 404 ``"Not Found"`` for an unknown path,
404 ``"Sampler not found"`` for a sampler A1111 does not know, and a brushlink error's sentence
(with its ``code``) under the status ``STATUS`` gives it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from brushlink.plugin.errors import BrushlinkError, JobWasCancelled, RequestError

from . import catalog, codec, samplers, schema, translate
from .extras import Upscaler
from .facade import Facade, Outcome, Task

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("brushlink.sdapi")

# brushlink error codes -> HTTP status; other request errors are 422, the rest 500
STATUS = {
    "unknown_model": 404,
    "message_too_big": 413,
    "too_many_pixels": 413,
    "queue_full": 429,
    "unsupported": 400,
    "unauthorized": 401,
    "origin_refused": 403,
    "cancelled": 409,
    "server_unavailable": 503,
    "out_of_memory": 507,
}


def status_of(err: BrushlinkError) -> int:
    return STATUS.get(err.code, 422 if isinstance(err, RequestError) else 500)


def first_failure(outcomes: list[Outcome]) -> None:
    """Raise a request's error when no job of it gave a result and one failed (an
    interrupted request answers with what it has, as A1111 does)."""
    if any(not isinstance(o, BrushlinkError) for o in outcomes):
        return
    for outcome in outcomes:
        if isinstance(outcome, BrushlinkError) and not isinstance(outcome, JobWasCancelled):
            raise outcome


def progress_answer(task: Task | None, skip_image: bool) -> dict[str, Any]:
    """``GET /progress`` as A1111 answers it, for the facade's current request."""
    state: dict[str, Any] = {
        "skipped": bool(task and task.skipped),
        "interrupted": bool(task and task.interrupted),
        "stopping_generation": False,
        "job": task.label if task else "",
        "job_count": len(task.job_ids) if task else 0,
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "job_no": task.finished if task else 0,
        "sampling_step": task.step[0] if task else 0,
        "sampling_steps": task.step[1] if task else 0,
    }
    if task is None:
        return {
            "progress": 0.0,
            "eta_relative": 0.0,
            "state": state,
            "current_image": None,
            "textinfo": None,
            "current_task": None,
        }
    step, total = task.step
    done = task.finished + (step / total if total else 0.0)
    progress = min(1.0, done / max(1, len(task.job_ids)))
    elapsed = time.monotonic() - task.started_at
    eta = elapsed / progress - elapsed if progress > 0 else 0.0
    if task.running is None and task.position:
        text = f"Waiting in the server's queue ({task.position} ahead)"
    else:
        text = f"Job {task.finished + 1} of {len(task.job_ids)}, step {step} of {total}"
    image = None
    if task.preview is not None and not skip_image:
        image = base64.b64encode(task.preview).decode("ascii")
    return {
        "progress": round(progress, 4),
        "eta_relative": round(eta, 3),
        "state": state,
        "current_image": image,
        "textinfo": text,
        "current_task": task.job_ids[0],
    }


def build(app: App) -> FastAPI:
    """The A1111 API as an ASGI app (wrapped by ``security.Guard`` before it is served)."""
    facade = Facade(app)
    limits = app.config.limits
    upscaler = Upscaler(app, facade)
    api = APIRouter(prefix="/sdapi/v1")

    async def generation(plan: translate.Plan, raw: dict[str, Any]) -> dict[str, Any]:
        outcomes, task = await facade.run(plan.label, plan.jobs)
        first_failure(outcomes)
        return await asyncio.to_thread(
            translate.generation_answer, plan, outcomes, task.interrupted, raw
        )

    @api.post("/txt2img")
    async def txt2img(request: HttpRequest) -> dict[str, Any]:
        raw, body = await schema.parse(request, schema.Txt2Img)
        model = translate.model_for(body, "generate", facade.model, app.registry)
        return await generation(translate.txt2img(body, model, app.registry, limits), raw)

    @api.post("/img2img")
    async def img2img(request: HttpRequest) -> dict[str, Any]:
        raw, body = await schema.parse(request, schema.Img2Img)

        def pictures() -> codec.Prepared:
            image = codec.read_image(body.init_images[0], limits, "init_images")
            mask = codec.read_image(body.mask, limits, "mask") if body.mask else None
            size = (body.width, body.height) if body.width and body.height else None
            return codec.prepare_img2img(
                image,
                mask,
                size,
                body.resize_mode,
                bool(body.inpainting_mask_invert),
                body.inpaint_full_res_padding,
                body.inpaint_full_res,
            )

        prepared = await asyncio.to_thread(pictures)
        kind = "inpaint" if prepared.mask is not None else "style"
        model = translate.model_for(body, kind, facade.model, app.registry)
        plan = translate.img2img(
            body, model, prepared.image, prepared.mask, prepared.context, app.registry, limits
        )
        return await generation(plan, raw)

    @api.get("/progress")
    async def progress(skip_current_image: bool = False) -> dict[str, Any]:
        return progress_answer(facade.current, skip_current_image)

    @api.post("/interrupt")
    async def interrupt() -> None:
        facade.interrupt()

    @api.post("/skip")
    async def skip() -> None:
        facade.skip()

    @api.post("/extra-single-image")
    async def extra_single_image(request: HttpRequest) -> dict[str, Any]:
        _, body = await schema.parse(request, schema.ExtrasSingle)
        images = await upscaler.run(body, [body.image])
        return {"html_info": "", "image": images[0]}

    @api.post("/extra-batch-images")
    async def extra_batch_images(request: HttpRequest) -> dict[str, Any]:
        _, body = await schema.parse(request, schema.ExtrasBatch)
        images = await upscaler.run(body, [item.data for item in body.imageList])
        return {"html_info": "", "images": images}

    catalog.add_routes(api, app, facade)

    web = FastAPI(title="brushlink (A1111 API)", docs_url=None, redoc_url=None, openapi_url=None)
    web.include_router(api)

    @web.exception_handler(BrushlinkError)
    async def brushlink_error(_: HttpRequest, err: BrushlinkError) -> JSONResponse:
        content = {"detail": err.message, "code": err.code, "field": err.field}
        return JSONResponse(content, status_code=status_of(err))

    @web.exception_handler(Exception)
    async def crashed(_: HttpRequest, err: Exception) -> JSONResponse:
        log.error("the A1111 door failed on a request", exc_info=err)
        return JSONResponse(
            {"detail": "The server failed on this request; its log says why.",
             "code": "internal_error"},
            status_code=500,
        )  # fmt: skip

    @web.exception_handler(samplers.SamplerNotFound)
    async def sampler_not_found(_: HttpRequest, err: samplers.SamplerNotFound) -> JSONResponse:
        return JSONResponse({"detail": "Sampler not found"}, status_code=404)

    @web.exception_handler(RequestValidationError)
    async def invalid(_: HttpRequest, err: RequestValidationError) -> JSONResponse:
        # the offending values are left out: they may be megabytes of base64
        detail = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in err.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    return web
