"""The MCP tools, on the SDK's ``MCPServer``: each builds a ``Request`` and runs it.

Pictures come back as MCP image content (PNG) and are saved into the output folder; the text
beside them names the files, seeds and scores. A brushlink error is a tool error
(``isError: true``, as the MCP spec wants failures a model can read and act on): its text is the
brushlink sentence followed by the code in brackets, and its structured content holds
``code``, ``message`` and ``field``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import Field

from brushlink.plugin.errors import BrushlinkError, InvalidField
from brushlink.plugin.protocol import Welcome
from brushlink.plugin.request import Job, Request, UpscaleParams

from .backend import Backend, read_input

INSTRUCTIONS = (
    "brushlink makes and edits pictures on this machine's image-model server. Call "
    "list_models first to see what is installed. Images are given as file paths or base64; "
    "results come back as images and are saved to files whose paths the answer names."
)

ImageArg = Annotated[str, Field(description="a file path, a data: URL or base64 image data")]
Model = Annotated[str | None, Field(description="a model from list_models (default: the server's)")]
Seed = Annotated[int | None, Field(description="the random seed (default: a new one)")]
Steps = Annotated[int | None, Field(description="sampling steps (default: the model's)")]


def failure(err: BrushlinkError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=f"{err.message} [{err.code}]")],
        structured_content={"code": err.code, "message": err.message, "field": err.field},
        is_error=True,
    )


def build_server(backend: Backend, welcome: Welcome) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("brushlink", instructions=INSTRUCTIONS)

    async def run(kind: str, make: Callable[[], Job]) -> CallToolResult:
        """Build the job (reading its input files), run it off the event loop, save it."""

        def work() -> CallToolResult:
            job = make()
            result = backend.run(job)
            if kind == "rank":
                ranking = result.metadata.get("ranking", [])
                lines = [f"{e['score']:.4f}  #{e['index']}" for e in ranking]
                return CallToolResult(
                    content=[TextContent(type="text", text="\n".join(lines) or "no images")],
                    structured_content={"ranking": ranking},
                )
            saved = backend.save(kind, job, result)
            content: list[ContentBlock] = [
                ImageContent(
                    type="image", data=base64.b64encode(s.png).decode(), mime_type="image/png"
                )
                for s in saved
            ]
            described = [
                f"{s.path}  {s.width}x{s.height}  seed {s.seed}"
                + (f"  score {s.score:.4f}" if s.score is not None else "")
                for s in saved
            ]
            content.append(TextContent(type="text", text="Saved:\n" + "\n".join(described)))
            model = result.metadata.get("model")
            images = [
                {"path": str(s.path), "width": s.width, "height": s.height, "seed": s.seed,
                 "score": s.score}
                for s in saved
            ]  # fmt: skip
            return CallToolResult(
                content=content, structured_content={"model": model, "images": images}
            )

        try:
            return await anyio.to_thread.run_sync(work)
        except BrushlinkError as err:
            return failure(err)

    @server.tool()
    async def list_models() -> CallToolResult:
        """The models the server has (what each can do) and its add-ons (LoRAs, ControlNets,
        VAEs, embeddings)."""
        try:
            current = await anyio.to_thread.run_sync(backend.welcome)
        except BrushlinkError as err:
            return failure(err)
        models = [
            {"name": m.name, "kinds": m.kinds, "description": m.description, "styles": m.styles}
            for m in current.models
        ]
        addons = [{"name": a.name, "type": a.type, "family": a.family} for a in current.addons]
        lines = [f"{m['name']}: {', '.join(m['kinds'])} - {m['description']}" for m in models]
        lines += [f"{a['type']} {a['name']}" for a in addons]
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines))],
            structured_content={"models": models, "addons": addons},
        )

    @server.tool()
    async def generate(
        prompt: Annotated[str, Field(description="what to draw")],
        negative_prompt: str = "",
        width: int | None = None,
        height: int | None = None,
        candidates: Annotated[int, Field(description="draw N, ranked by CLIP, best first")] = 1,
        keep: Annotated[int | None, Field(description="return the best K")] = None,
        tile: Annotated[str, Field(description="seamless tiling: none, x, y or xy")] = "none",
        model: Model = None,
        seed: Seed = None,
        steps: Steps = None,
    ) -> CallToolResult:
        """Draw pictures from a prompt."""
        request = Request(
            kind="generate", prompt=prompt, negative_prompt=negative_prompt, width=width,
            height=height, candidates=candidates, keep=keep, tile=tile, model=model, seed=seed,
            steps=steps,
        )  # fmt: skip
        return await run("generate", lambda: Job(request))

    @server.tool()
    async def inpaint(
        image: ImageArg,
        mask: Annotated[str, Field(description="white (or opaque) where to redraw; as image")],
        prompt: Annotated[str, Field(description="what to put there (empty: remove)")] = "",
        strength: float | None = None,
        model: Model = None,
        seed: Seed = None,
        steps: Steps = None,
    ) -> CallToolResult:
        """Redraw the masked part of a picture (with no prompt: remove what is there)."""
        request = Request(
            kind="inpaint", prompt=prompt, strength=strength, model=model, seed=seed, steps=steps
        )
        return await run(
            "inpaint",
            lambda: Job(request, image=read_input(image, "image"), mask=read_input(mask, "mask")),
        )

    @server.tool()
    async def style(
        image: ImageArg,
        style: Annotated[str | None, Field(description="a named style, e.g. sketch")] = None,
        prompt: Annotated[str, Field(description="or restyle toward a prompt")] = "",
        reference: Annotated[str | None, Field(description="or take this image's colours")] = None,
        strength: float | None = None,
        model: Model = None,
        seed: Seed = None,
    ) -> CallToolResult:
        """Restyle a picture: a named style, a prompt, or a reference image's colours."""

        def make() -> Job:
            if not (style or prompt.strip() or reference):
                raise InvalidField("Say how to restyle: a style, a prompt or a reference.")
            request = Request(
                kind="style", style=style, prompt=prompt, strength=strength, model=model, seed=seed
            )
            ref = read_input(reference, "reference") if reference else None
            return Job(request, image=read_input(image, "image"), reference=ref)

        return await run("style", make)

    @server.tool()
    async def rank(
        prompt: Annotated[str, Field(description="what the pictures should show")],
        images: Annotated[list[str], Field(description="file paths or base64 images")],
        model: Model = None,
    ) -> CallToolResult:
        """Score pictures against a prompt with CLIP, best first (index = position given)."""
        request = Request(kind="rank", prompt=prompt, model=model)
        return await run(
            "rank",
            lambda: Job(
                request, inputs=[read_input(x, f"images[{i}]") for i, x in enumerate(images)]
            ),
        )

    if "upscale" in welcome.capabilities:

        @server.tool()
        async def upscale(
            image: ImageArg,
            scale: Annotated[int, Field(description="the factor, e.g. 2 or 4")] = 2,
            model: Model = None,
        ) -> CallToolResult:
            """Enlarge a picture with an upscale model."""
            request = Request(kind="upscale", model=model, upscale=UpscaleParams(scale=scale))
            return await run("upscale", lambda: Job(request, image=read_input(image, "image")))

    return server
